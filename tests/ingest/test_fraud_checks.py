"""Unit tests of the fraud checks (ingest.fraud, ingest.imaging) on small deterministic inputs."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ingest import fraud, tracks
from ingest.fraud import Check, FraudPolicy, TrackPoint
from ingest.imaging import (
    CameraStats,
    copy_match,
    facts_of,
    thumb_array,
    thumbnail,
    visual_motion,
)
from ingest.imaging import camera_stats as stats_of_kept

POL = FraudPolicy()
LAT0, LON0 = 60.17, 24.94


def at(seq: int, t: float, north_m: float, east_m: float = 0.0) -> TrackPoint:
    lat = LAT0 + north_m / 111_320.0
    lon = LON0 + east_m / (111_320.0 * math.cos(math.radians(LAT0)))
    return TrackPoint(seq, seq, t, lat, lon)


def straight(n: int, step_m: float = 8.0, dt: float = 1.0, t0: float = 0.0) -> list[TrackPoint]:
    return [at(i, t0 + i * dt, i * step_m) for i in range(n)]


def test_a_straight_honest_track_raises_no_motion_flags() -> None:
    pts = straight(30)
    for i in range(1, len(pts)):
        assert fraud.check_motion(pts[i], pts[:i], POL) == []
        assert fraud.check_stationary(pts[i], pts[:i], POL) == []


def test_a_parked_device_sending_for_two_minutes_is_stationary_farming() -> None:
    rng = np.random.default_rng(0)
    pts = [at(i, i * 2.0, rng.normal(0, 2), rng.normal(0, 2)) for i in range(60)]
    flags = fraud.check_stationary(pts[-1], pts[:-1], POL)
    assert [f.check for f in flags] == [Check.STATIONARY_FARMING]
    assert flags[0].evidence["span_s"] >= POL.stationary_min_span_s


def test_a_car_waiting_thirty_seconds_at_a_red_light_is_not_farming() -> None:
    rng = np.random.default_rng(1)
    pts = [at(i, i * 3.0, rng.normal(0, 2), rng.normal(0, 2)) for i in range(11)]
    assert fraud.check_stationary(pts[-1], pts[:-1], POL) == []


def test_the_trip_after_a_long_jump_is_flagged_but_not_the_frames_before() -> None:
    pts = straight(10) + [at(10 + i, 10.0 + i, 5_000 + i * 8.0) for i in range(10)]
    jump = fraud.check_motion(pts[10], pts[:10], POL)
    assert jump and jump[0].check in (Check.TELEPORT, Check.IMPOSSIBLE_SPEED)
    out = tracks.check_after_teleport(pts, {10: jump[0]}, POL)
    assert sorted(out) == list(range(11, 20))
    assert out[11].check == Check.TRACK_AFTER_TELEPORT


def test_two_devices_under_one_key_are_a_cloned_key() -> None:
    a = [at(i, i * 2.0, i * 16.0) for i in range(8)]
    b = [
        TrackPoint(100 + i, 100 + i, i * 2.0 + 1.0, LAT0 + 0.05, LON0 + i * 0.0002)
        for i in range(8)
    ]
    track = sorted(a + b, key=lambda p: p.t)
    flags = fraud.check_motion(track[-1], track[:-1], POL)
    assert [f.check for f in flags] == [Check.CLONED_KEY]


def test_circling_a_few_blocks_for_half_an_hour_is_low_novelty_and_a_long_drive_is_not() -> None:
    loop = [at(i, i * 1.0, 100 * math.sin(i / 15), 100 * math.cos(i / 15)) for i in range(300)]
    flags = tracks.check_low_novelty(loop, POL)
    assert len(flags) == len(loop) and next(iter(flags.values())).check == Check.LOW_NOVELTY
    assert tracks.check_low_novelty(straight(300), POL) == {}


def test_a_compact_drive_that_keeps_finding_new_streets_is_not_low_novelty() -> None:
    """A small old town: 6 parallel streets 240 m long, 40 m apart, each driven once. The
    drive stays within ~90 m (RMS) of one spot over 1.6 km, but never comes back."""
    xy: list[tuple[float, float]] = []
    for row in range(6):
        xs = [8.0 * k for k in range(31)]
        xy += [(x if row % 2 == 0 else 240.0 - x, 40.0 * row) for x in xs]
        if row < 5:
            xy += [(240.0 if row % 2 == 0 else 0.0, 40.0 * row + 8.0 * k) for k in range(1, 5)]
    pts = [at(i, float(i), n, e) for i, (e, n) in enumerate(xy)]
    assert tracks.check_low_novelty(pts, POL) == {}
    assert tracks.check_novelty(pts, POL) == {}


def test_a_still_picture_over_a_claimed_movement_is_flagged_by_tracked_corners() -> None:
    a, b = at(1, 0.0, 0.0), at(2, 1.0, 9.0)
    assert (
        fraud.check_visual_flow(a, b, 0.0005, 120, POL)[0].check == Check.STATIC_IMAGE_MOVING_GNSS
    )
    assert fraud.check_visual_flow(a, b, 0.02, 120, POL) == []
    assert fraud.check_visual_flow(a, at(2, 1.0, 2.0), 0.0005, 120, POL) == []


def test_turns_of_the_track_that_the_pictures_do_not_show_flag_the_rest_of_the_trip() -> None:
    # east 10 frames, north 10 frames, east again: two 90 degree turns
    pts = [at(i, float(i), 0.0, i * 8.0) for i in range(10)]
    pts += [at(10 + i, 10.0 + i, (i + 1) * 8.0, 72.0) for i in range(10)]
    pts += [at(20 + i, 20.0 + i, 80.0, 72.0 + (i + 1) * 8.0) for i in range(10)]
    straight_pictures: list[float | None] = [None] + [0.0] * (len(pts) - 1)
    flags = tracks.check_visual_turns(pts, straight_pictures, POL)
    assert flags and next(iter(flags.values())).check == Check.VISUAL_TRACK_MISMATCH
    turning: list[float | None] = [None] + [0.0] * (len(pts) - 1)
    for i in (8, 9, 10, 11):
        turning[i] = -22.5
    for i in (18, 19, 20, 21):
        turning[i] = 22.5
    assert tracks.check_visual_turns(pts, turning, POL) == {}


def _scene(seed: int = 3) -> np.ndarray:
    """A textured 'street' for the camera: random rectangles on a noisy background."""
    rng = np.random.default_rng(seed)
    img = rng.integers(60, 120, size=(360, 1200), dtype=np.uint8)
    for _ in range(250):
        x, y = int(rng.integers(0, 1180)), int(rng.integers(0, 340))
        cv2.rectangle(
            img,
            (x, y),
            (x + int(rng.integers(5, 30)), y + int(rng.integers(5, 30))),
            int(rng.integers(0, 255)),
            -1,
        )
    return cv2.GaussianBlur(img, (3, 3), 0)


def test_visual_motion_sees_a_still_camera_as_no_flow() -> None:
    frame = _scene()[:, 400:720]
    m = visual_motion(frame, frame.copy())
    assert m.points >= 20 and m.flow < POL.static_max_flow and m.yaw_deg is None


def test_visual_motion_recovers_a_camera_turning_right() -> None:
    a = _scene()[:, 400:720]
    h, w = a.shape
    f = (w / 2) / math.tan(math.radians(60))
    k = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    psi = math.radians(8)  # the camera turns right: the scene rotates by -psi about y
    r = np.array([[math.cos(psi), 0, -math.sin(psi)], [0, 1, 0], [math.sin(psi), 0, math.cos(psi)]])
    b = cv2.warpPerspective(a, k @ r @ np.linalg.inv(k), (w, h))
    m = visual_motion(a, b)
    assert m.yaw_deg is not None and abs(m.yaw_deg - 8) < 1.5
    back = visual_motion(b, a)
    assert back.yaw_deg is not None and abs(back.yaw_deg + 8) < 1.5


def _street(noise_seed: int, parallax_seed: int | None = None) -> np.ndarray:
    """Boxes on a plain ground with sensor noise; `parallax_seed` moves each box a little,
    as another camera a metre away would see them."""
    rng = np.random.default_rng(3)
    jitter = np.random.default_rng(parallax_seed) if parallax_seed is not None else None
    img = np.full((200, 360), 90, np.uint8)
    for _ in range(120):
        x, y = int(rng.integers(0, 350)), int(rng.integers(0, 190))
        w, h, v = int(rng.integers(5, 30)), int(rng.integers(5, 30)), int(rng.integers(0, 255))
        if jitter is not None:
            x, y = x + int(jitter.integers(-2, 3)), y + int(jitter.integers(-2, 3))
        cv2.rectangle(img, (x, y), (x + w, y + h), v, -1)
    noise = np.random.default_rng(noise_seed).normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def test_a_cropped_retoned_reencoded_copy_matches_and_another_cameras_view_of_the_spot_does_not() -> (
    None
):
    a = _street(10)
    retoned = cv2.convertScaleAbs(
        cv2.resize(a[6:-6, 10:-10], (360, 200), interpolation=cv2.INTER_AREA), alpha=1.05, beta=4
    )
    copy = cv2.imdecode(
        cv2.imencode(".jpg", retoned, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_GRAYSCALE
    )
    assert copy is not None
    same = copy_match(a, copy)
    assert same.detail_ncc >= POL.copy_min_ncc and same.inliers >= POL.copy_min_inliers
    assert copy_match(a, _street(11, parallax_seed=5)).detail_ncc < POL.copy_min_ncc


def camera_stats(greys: list[np.ndarray]) -> CameraStats:
    """What the audit computes from what the image-check job kept of each frame."""
    facts = [facts_of(g) for g in greys]
    return stats_of_kept(
        [thumb_array(thumbnail(g)) for g in greys],
        [f.sharpness for f in facts],
        [f.brightness for f in facts],
        [f.highlights for f in facts],
    )


def _drive(n: int, seed: int = 0) -> list[np.ndarray]:
    """Frames of a moving car: a different stretch of textured street in each."""
    wide = _scene(seed)
    return [np.ascontiguousarray(wide[:180, 20 * i : 20 * i + 320]) for i in range(n)]


def test_a_smudge_that_stays_while_the_street_changes_is_an_obstructed_camera() -> None:
    frames = _drive(30)
    mask = np.ones((180, 320), np.float32)
    cv2.circle(mask, (240, 60), 45, 0.15, -1)
    smudged = [(f * mask).astype(np.uint8) for f in frames]
    flag = fraud.camera_fault(camera_stats(smudged), 400.0, POL)
    assert flag is not None and flag.check == Check.CAMERA_FAULT and "obstructed" in flag.reason
    assert fraud.camera_fault(camera_stats(frames), 400.0, POL) is None


def test_a_blurred_or_underexposed_camera_is_a_camera_fault_over_a_drive() -> None:
    frames = _drive(30)
    blurred = fraud.camera_fault(
        camera_stats([cv2.GaussianBlur(f, (0, 0), 2.0) for f in frames]), 400.0, POL
    )
    assert blurred is not None and "blurred" in blurred.reason
    dark = fraud.camera_fault(
        camera_stats([cv2.convertScaleAbs(f, alpha=0.22) for f in frames]), 400.0, POL
    )
    assert dark is not None and "underexposed" in dark.reason
    assert (
        fraud.camera_fault(
            camera_stats([cv2.GaussianBlur(f, (0, 0), 2.0) for f in frames]), 50.0, POL
        )
        is None
    )


def test_every_frame_of_a_trip_with_a_cloned_key_is_flagged_and_other_trips_are_not() -> None:
    trip = straight(20)
    later = straight(10, t0=5_000.0)
    out = tracks.check_clone_period([*trip, *later], [8, 9, 11], POL)
    assert sorted(out) == list(range(20))
    assert out[0].check == Check.CLONED_KEY and out[0].evidence["cloned_frames"] == 3


def test_driving_round_the_same_block_again_and_again_is_low_novelty_and_a_long_drive_is_not() -> (
    None
):
    # a 100 m x 100 m block, 8 m a frame, one frame a second, six laps
    lap = [(0.0, 8.0 * k) for k in range(13)] + [(8.0 * k, 100.0) for k in range(13)]
    lap += [(100.0, 100 - 8.0 * k) for k in range(13)] + [(100 - 8.0 * k, 0.0) for k in range(13)]
    pts = [at(i, float(i), *lap[i % len(lap)]) for i in range(6 * len(lap))]
    flags = tracks.check_revisits(pts, POL)
    assert len(flags) == len(pts) and next(iter(flags.values())).check == Check.LOW_NOVELTY
    assert next(iter(flags.values())).evidence["revisit_share"] > 0.5
    assert tracks.check_revisits(straight(300), POL) == {}
    both = tracks.check_novelty(pts, POL)[0]
    assert {"gyration_m", "revisit_share", "cells_per_km"} <= set(both.evidence)


def test_the_farthest_a_car_gets_follows_its_speeds_at_both_ends() -> None:
    # standing to standing in 10 s: 6 m/s2 up to 37.5 m/s, 10 m/s2 down: 187.5 m
    assert fraud.max_distance_m(0.0, 0.0, 10.0, POL) == pytest.approx(187.5)
    # cruising 30 m/s for 20 s can go faster in between, and at most at 70 m/s
    assert 600.0 < fraud.max_distance_m(30.0, 30.0, 20.0, POL) < 70.0 * 20


def test_a_jump_hidden_in_a_stop_is_impossible_and_a_long_gap_at_speed_is_not() -> None:
    a = TrackPoint(1, 1, 0.0, 60.17, 24.94, speed_mps=1.7)
    far = TrackPoint(2, 2, 22.6, 60.17 + 1159 / 111_195, 24.94, speed_mps=3.6)
    (flag,) = fraud.check_kinematics(a, far, POL)
    assert flag.check == Check.IMPOSSIBLE_SPEED and flag.evidence["distance_m"] == pytest.approx(
        1159, abs=2
    )
    cruise = TrackPoint(3, 2, 22.6, 60.17 + 600 / 111_195, 24.94, speed_mps=27.0)
    assert (
        fraud.check_kinematics(TrackPoint(1, 1, 0.0, 60.17, 24.94, speed_mps=26.0), cruise, POL)
        == []
    )
    unknown = TrackPoint(2, 2, 22.6, 60.17 + 1159 / 111_195, 24.94)
    assert fraud.check_kinematics(a, unknown, POL) == []
