"""Procedural worlds (sim.procgen) and what `--world` names (sim.worlds)."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from sim import procgen
from sim.features import load_features
from sim.world import Scenery, World
from sim.worlds import name_of, resolve


@pytest.fixture(scope="module")
def worlds() -> dict[str, World]:
    return {k: procgen.build(k, 1) for k in procgen.KINDS}


def test_every_kind_is_one_drivable_network_a_car_can_get_around(worlds: dict[str, World]) -> None:
    for kind, w in worlds.items():
        assert w.total_length_km() > 15.0, kind
        assert len(w.drivable_nodes) >= 0.9 * len(w.node_ids), kind
        assert nx.is_weakly_connected(w.graph), kind


def test_the_kinds_differ_in_speeds_buildings_one_ways_and_scenery(
    worlds: dict[str, World],
) -> None:
    limits = {k: {r.speed_limit_kmh for r in w.roads} for k, w in worlds.items()}
    assert {20, 80} <= limits["rural"] and {20, 80} <= limits["mountain"]
    assert max(limits["oldtown"]) <= 40 and 20 in limits["oldtown"]
    per_km = {k: len(w.buildings) / w.total_length_km() for k, w in worlds.items()}
    assert per_km["rural"] < 5 < per_km["suburban"] and per_km["oldtown"] > per_km["suburban"]
    oneway = {k: np.mean([r.oneway for r in w.roads]) for k, w in worlds.items()}
    assert oneway["oldtown"] > 0.5 and oneway["rural"] == 0.0
    looks = {w.scenery for w in worlds.values()}
    assert len(looks) == len(worlds) and Scenery() not in looks
    assert worlds["mountain"].scenery.windows is False
    assert {w.scenery.light for w in worlds.values()} >= {"day", "overcast", "dusk"}


def test_the_same_seed_builds_the_same_world_and_another_seed_another(tmp_path: Path) -> None:
    a, b, c = (
        procgen.build("suburban", 3),
        procgen.build("suburban", 3),
        procgen.build("suburban", 4),
    )
    assert np.array_equal(a.node_xy, b.node_xy)
    assert len(a.buildings) == len(b.buildings)
    assert not (a.node_xy.shape == c.node_xy.shape and np.allclose(a.node_xy, c.node_xy))


def test_a_procedural_world_folder_keeps_its_scenery_and_signs_every_posted_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROADMESH_SIM_WORLDS", str(tmp_path))
    folder = resolve("mountain:2")
    assert folder == tmp_path / "mountain-s2" and name_of("mountain:2") == "mountain-s2"
    world = World.load(folder)
    assert world.scenery == procgen.SCENERY["mountain"]
    assert world.source == "procedural:mountain:seed2"
    readme = (folder / "README.md").read_text()
    assert "not OpenStreetMap data" in readme and "pyrosm" not in readme
    feats = load_features(folder / "features.geojson", world)
    classes = {f.cls for f in feats}
    assert {"speed_limit_20", "speed_limit_80"} <= classes
    meta = json.loads((folder / "roads.geojson").read_text())["metadata"]
    assert meta["scenery"]["kind"] == "mountain"
    assert resolve(folder) == folder  # a folder is itself
    with pytest.raises(ValueError, match="not a world folder"):
        resolve(tmp_path / "nowhere")


def test_an_untagged_osm_building_gets_a_height_from_its_tag_and_footprint() -> None:
    from sim.osm import typical_height_m

    assert typical_height_m("shed", 30.0, 1) < 4.0
    assert 5.0 < typical_height_m("house", 120.0, 1) < 8.0
    assert typical_height_m("yes", 100.0, 1) < 9.0
    assert typical_height_m("yes", 2_000.0, 1) >= 14.0
