"""Unit tests of the fraud checks (ingest.fraud, ingest.imaging) on small deterministic inputs."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ingest import fraud
from ingest.fraud import Check, FraudPolicy, TrackPoint
from ingest.imaging import visual_motion

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
    out = fraud.check_after_teleport(pts, {10: jump[0]}, POL)
    assert sorted(out) == list(range(11, 20))
    assert out[11].check == Check.TRACK_AFTER_TELEPORT


def test_two_devices_under_one_key_are_a_cloned_key() -> None:
    a = [at(i, i * 2.0, i * 16.0) for i in range(8)]
    b = [TrackPoint(100 + i, 100 + i, i * 2.0 + 1.0, LAT0 + 0.05, LON0 + i * 0.0002) for i in range(8)]
    track = sorted(a + b, key=lambda p: p.t)
    flags = fraud.check_motion(track[-1], track[:-1], POL)
    assert [f.check for f in flags] == [Check.CLONED_KEY]


def test_circling_a_few_blocks_for_half_an_hour_is_low_novelty_and_a_long_drive_is_not() -> None:
    loop = [at(i, i * 1.0, 100 * math.sin(i / 15), 100 * math.cos(i / 15)) for i in range(300)]
    flags = fraud.check_low_novelty(loop, POL)
    assert len(flags) == len(loop) and next(iter(flags.values())).check == Check.LOW_NOVELTY
    assert fraud.check_low_novelty(straight(300), POL) == {}


def test_a_still_picture_over_a_claimed_movement_is_flagged_by_tracked_corners() -> None:
    a, b = at(1, 0.0, 0.0), at(2, 1.0, 9.0)
    assert fraud.check_visual_flow(a, b, 0.0005, 120, POL)[0].check == Check.STATIC_IMAGE_MOVING_GNSS
    assert fraud.check_visual_flow(a, b, 0.02, 120, POL) == []
    assert fraud.check_visual_flow(a, at(2, 1.0, 2.0), 0.0005, 120, POL) == []


def test_turns_of_the_track_that_the_pictures_do_not_show_flag_the_rest_of_the_trip() -> None:
    # east 10 frames, north 10 frames, east again: two 90 degree turns
    pts = [at(i, float(i), 0.0, i * 8.0) for i in range(10)]
    pts += [at(10 + i, 10.0 + i, (i + 1) * 8.0, 72.0) for i in range(10)]
    pts += [at(20 + i, 20.0 + i, 80.0, 72.0 + (i + 1) * 8.0) for i in range(10)]
    straight_pictures: list[float | None] = [None] + [0.0] * (len(pts) - 1)
    flags = fraud.check_visual_turns(pts, straight_pictures, POL)
    assert flags and next(iter(flags.values())).check == Check.VISUAL_TRACK_MISMATCH
    turning: list[float | None] = [None] + [0.0] * (len(pts) - 1)
    for i in (8, 9, 10, 11):
        turning[i] = -22.5
    for i in (18, 19, 20, 21):
        turning[i] = 22.5
    assert fraud.check_visual_turns(pts, turning, POL) == {}


def _scene(seed: int = 3) -> np.ndarray:
    """A textured 'street' for the camera: random rectangles on a noisy background."""
    rng = np.random.default_rng(seed)
    img = rng.integers(60, 120, size=(360, 1200), dtype=np.uint8)
    for _ in range(250):
        x, y = int(rng.integers(0, 1180)), int(rng.integers(0, 340))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(5, 30)), y + int(rng.integers(5, 30))), int(rng.integers(0, 255)), -1)
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
