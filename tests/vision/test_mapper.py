"""The mapper: bearing and range from a box, passes triangulated, features clustered,
confirmed and removed; the one-to-one matching rule of the map-accuracy benchmark."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vision.camera import Intrinsics, Pose, project
from vision.mapper import (
    CameraTrack,
    MapperSettings,
    Observation,
    build_map,
    locate,
    match_nearest,
    passes,
    split_label,
)

INTR = Intrinsics.from_hfov(1280, 720, 120.0)
SIGN = np.array([2.0, 30.0])  # a 0.64 m speed-limit sign, face towards the south
SIGN_Z = 2.3


def sighting(
    cam: np.ndarray,
    heading: float,
    *,
    oid: int,
    t: float,
    device: str = "d1",
    label: str = "speed_limit_50",
    where: np.ndarray = SIGN,
    gnss: np.ndarray | None = None,
) -> Observation | None:
    """What a perfect detector reports when the camera at `cam` sees the sign."""
    pose = Pose(float(cam[0]), float(cam[1]), 1.4, heading)
    half = 0.32
    corners = np.array(
        [[where[0] - half, where[1], SIGN_Z - half], [where[0] + half, where[1], SIGN_Z + half]]
    )
    uv, z = project(corners, pose, INTR)
    if (z <= 0).any():
        return None
    (u0, v0), (u1, v1) = uv
    x1, x2 = sorted((u0, u1))
    y1, y2 = sorted((v0, v1))
    if x1 < 0 or x2 > INTR.width:
        return None
    reported = cam + (np.zeros(2) if gnss is None else gnss)
    return Observation(
        oid, oid, device, t, float(reported[0]), float(reported[1]), heading, label, 0.9,
        (x1 + x2) / 2, x2 - x1, y2 - y1, INTR.fx, INTR.fy, INTR.cx,
    )  # fmt: skip


def drive_north(start_t: float, device: str, first_id: int, gnss: np.ndarray) -> list[Observation]:
    out = []
    for k, y in enumerate(np.arange(-10.0, 26.0, 8.0)):
        o = sighting(
            np.array([0.0, y]), 0.0, oid=first_id + k, t=start_t + k, device=device, gnss=gnss
        )
        if o is not None:
            out.append(o)
    return out


def test_a_label_splits_into_class_and_value():
    assert split_label("speed_limit_50") == ("speed_limit", "50")
    assert split_label("traffic_light") == ("traffic_light", "")


def test_bearing_and_range_come_from_the_box_and_the_class_size():
    o = sighting(np.array([0.0, 10.0]), 0.0, oid=1, t=0.0)
    assert o is not None
    loc = locate(o, MapperSettings())
    assert loc is not None
    assert loc.bearing_deg == pytest.approx(math.degrees(math.atan2(2.0, 20.0)), abs=0.5)
    assert loc.range_m == pytest.approx(math.hypot(2.0, 20.0), rel=0.05)
    assert (loc.east, loc.north) == pytest.approx((2.0, 30.0), abs=1.0)


def test_a_face_or_a_tiny_box_is_not_placed():
    o = sighting(np.array([0.0, 10.0]), 0.0, oid=1, t=0.0, label="face")
    assert o is not None and locate(o, MapperSettings()) is None


def test_one_pass_of_a_device_is_triangulated_into_one_estimate():
    obs = drive_north(0.0, "d1", 0, np.zeros(2))
    ps = passes(obs)
    assert len(ps) == 1
    assert len(ps[0].members) == len(obs) >= 3
    assert (ps[0].east, ps[0].north) == pytest.approx((2.0, 30.0), abs=0.3)
    assert ps[0].value == "50"


def test_passes_with_independent_gnss_errors_average_out():
    rng = np.random.default_rng(3)
    obs = []
    for k in range(6):
        obs += drive_north(1000.0 * k, f"d{k % 3}", 100 * k, rng.normal(0, 1.5, 2))
    (f,) = build_map(obs)
    err = math.hypot(f.east - 2.0, f.north - 30.0)
    assert err < 1.5
    assert f.status == "confirmed"
    assert (len(f.passes), f.devices) == (6, 3)
    assert f.label == "speed_limit_50"
    assert abs((f.facing_deg - 180.0 + 180) % 360 - 180) < 30
    major, minor, _az = f.ellipse()
    assert major >= minor > 0


def test_a_short_single_pass_is_a_candidate_and_a_long_one_confirms():
    obs = drive_north(0.0, "d1", 0, np.zeros(2))
    (f,) = build_map(obs[-2:])
    assert f.status == "candidate"
    (f,) = build_map(obs)  # 5 sightings over 32 m of travel
    assert f.status == "confirmed"
    (f,) = build_map(obs, s=MapperSettings(confirm_single_observations=99))
    assert f.status == "candidate"


def test_a_box_cut_off_by_the_image_edge_gets_no_range():
    o = sighting(np.array([0.0, 10.0]), 0.0, oid=1, t=0.0)
    assert o is not None
    cut = Observation(**{**o.__dict__, "u": o.box_w / 2 + 1.0})
    assert locate(cut, MapperSettings()) is None


def test_signs_back_to_back_are_two_features():
    obs = drive_north(0.0, "d1", 0, np.zeros(2)) + drive_north(500.0, "d2", 100, np.zeros(2))
    # the same pole seen from the north: a second sign facing the other way
    for k, y in enumerate(np.arange(70.0, 34.0, -8.0)):
        o = sighting(np.array([4.0, y]), 180.0, oid=200 + k, t=900.0 + k, device="d3")
        if o is not None:
            obs.append(o)
    for k, y in enumerate(np.arange(70.0, 34.0, -8.0)):
        o = sighting(np.array([4.0, y]), 180.0, oid=300 + k, t=1900.0 + k, device="d3")
        if o is not None:
            obs.append(o)
    fs = build_map(obs)
    assert len(fs) == 2
    assert sorted(round(f.facing_deg / 90) % 4 for f in fs) == [0, 2]


def track_of(runs: list[tuple[str, float]]) -> CameraTrack:
    dev, t, e, n, h = [], [], [], [], []
    for device, t0 in runs:
        for k, y in enumerate(np.arange(-10.0, 26.0, 8.0)):
            dev.append(device)
            t.append(t0 + k)
            e.append(0.0)
            n.append(float(y))
            h.append(0.0)
    return CameraTrack(np.array(dev), np.array(t), np.array(e), np.array(n), np.array(h))


def test_a_feature_that_three_passes_drove_by_without_seeing_is_removed():
    seen = [("d1", 0.0), ("d2", 1000.0)]
    obs = drive_north(0.0, "d1", 0, np.zeros(2)) + drive_north(1000.0, "d2", 100, np.zeros(2))
    blind = [("d1", 2000.0), ("d3", 3000.0)]
    (f,) = build_map(obs, track_of(seen + blind))
    assert (f.status, f.missed_passes) == ("confirmed", 2)
    (f,) = build_map(obs, track_of([*seen, *blind, ("d2", 4000.0)]))
    assert (f.status, f.missed_passes) == ("removed", 3)


def test_a_pass_that_sees_it_again_resets_the_count():
    obs = (
        drive_north(0.0, "d1", 0, np.zeros(2))
        + drive_north(1000.0, "d2", 100, np.zeros(2))
        + drive_north(5000.0, "d3", 200, np.zeros(2))
    )
    runs = [
        ("d1", 0.0),
        ("d2", 1000.0),
        ("d1", 2000.0),
        ("d2", 3000.0),
        ("d4", 4000.0),
        ("d3", 5000.0),
    ]
    (f,) = build_map(obs, track_of(runs))
    assert (f.status, f.missed_passes) == ("confirmed", 0)


def test_matching_is_one_to_one_same_label_nearest_first():
    feats = [("stop", 0.0, 0.0), ("stop", 1.0, 0.0), ("yield", 0.0, 0.5)]
    truth = [("stop", 0.9, 0.0), ("stop", 30.0, 0.0), ("yield", 6.0, 0.0)]
    m = match_nearest(feats, truth)
    assert [(x.feature, x.truth) for x in m] == [(1, 0)]
    assert m[0].distance_m == pytest.approx(0.1)
