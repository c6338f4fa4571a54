"""Shared fixtures for the simulator tests: a tiny synthetic world with one straight road."""

from __future__ import annotations

import numpy as np
import pytest

from sim.features import MapFeature
from sim.scene import StaticScene, build_static_scene
from sim.world import Road, World
from vision.geo import LocalFrame


@pytest.fixture(scope="session")
def straight_world() -> World:
    xy = np.array([[0.0, -100.0], [0.0, 300.0]])
    road = Road(0, 1, xy, "secondary", 2, False, 40, "Testikatu")
    return World(
        LocalFrame(60.17, 24.94),
        np.array([1, 2], dtype=np.int64),
        xy.copy(),
        [road],
        [],
        [],
        "synthetic",
    )


@pytest.fixture(scope="session")
def stop_sign() -> MapFeature:
    # right side of a northbound lane, 30 m ahead, facing south (towards the camera)
    return MapFeature("f-test-stop", "stop", 4.25, 30.0, 2.4, 180.0, 0.9, 0.9, 0)


@pytest.fixture(scope="session")
def straight_scene(straight_world: World, stop_sign: MapFeature) -> StaticScene:
    return build_static_scene(straight_world, [stop_sign])
