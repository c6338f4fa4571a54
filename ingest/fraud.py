"""Fraud and plausibility checks: plain functions over track points and image facts.

Each check returns `Flag` values (a check name, a score in 0..1, a sentence and the
evidence numbers). A frame whose highest score reaches the lifecycle's flag score
(`webapp.fleet.lifecycle.FLAG_SCORE`, the one place that rule is written) is `flagged`:
kept as evidence, excluded from rewards. The track checks run at the door (`ingest.door`,
against the frames already stored) and in the periodic audit (`ingest.audit`, over whole
tracks); the checks on the pixels run in the image-check job (`ingest.image_checks`), which
decodes each frame once; the checks over whole trips are in `ingest.tracks`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ingest.imaging import CameraStats


class Check:
    """The check names stored in Frame.flags[*].check (stable, machine-readable)."""

    IMPOSSIBLE_SPEED = "impossible_speed"
    TELEPORT = "teleport"
    IMPOSSIBLE_ACCELERATION = "impossible_acceleration"
    CLONED_KEY = "cloned_key"
    DUPLICATE_IMAGE = "duplicate_image"
    NEAR_DUPLICATE_IMAGE = "near_duplicate_image"
    STATIONARY_FARMING = "stationary_farming"
    STATIC_IMAGE_MOVING_GNSS = "static_image_moving_gnss"
    LOW_QUALITY = "low_quality"
    TRACK_AFTER_TELEPORT = "track_after_teleport"
    VISUAL_TRACK_MISMATCH = "visual_track_mismatch"
    LOW_NOVELTY = "low_novelty"
    DUPLICATE_DRIVE = "duplicate_drive"
    CAMERA_FAULT = "camera_fault"
    UNDECODABLE_IMAGE = "undecodable_image"
    OFF_ROAD = "off_road"
    MAP_MISMATCH = "map_mismatch"
    SHARED_TRACK = "shared_track"
    PLACE_MISMATCH = "place_mismatch"


@dataclass(frozen=True)
class FraudPolicy:
    max_speed_mps: float = 70.0  # 252 km/h
    teleport_m: float = 2_000.0  # an impossible jump at least this long is a teleport
    gnss_noise_m: float = 15.0  # allowance per position for GNSS error
    max_accel_mps2: float = 12.0  # about 1.2 g, sustained between frames
    clone_window_s: float = 30.0
    # cloned-key frames in a trip before the whole trip is flagged (not one GNSS glitch)
    clone_min_frames: int = 3
    near_duplicate_bits: int = 2  # pHash Hamming distance for "the same picture"
    # own frames closer in time than this are not copies
    near_duplicate_same_device_s: float = 120.0
    stationary_radius_m: float = 15.0  # 8 honest frames 8 m apart cannot fit in it
    stationary_min_frames: int = 8
    stationary_min_span_s: float = 90.0  # longer than a red light; the stock edge sends a frame every few s while stopped (GNSS noise)
    min_sharpness: float = 15.0  # server-side Laplacian variance on the reduced decode
    min_brightness: float = 25.0
    max_brightness: float = 235.0
    static_image_min_m: float = 5.0  # claimed movement above which the picture must change
    static_run_min_m: float = 25.0  # ... and a run of such pairs must claim this net displacement
    # the largest change of any 8x6 block of the thumbnails (/255) below which the picture
    # did not change: 4 grey levels, several times the sensor noise left in a block
    static_image_max_change: float = 0.016
    static_max_flow: float = 0.002  # median corner displacement / width below which nothing moved
    static_min_corners: int = 40  # ... measured on at least this many tracked corners
    session_gap_s: float = 600.0  # frames further apart than this belong to different trips
    novelty_window_s: float = 1800.0  # the loop check looks at trip windows this long
    novelty_min_path_m: float = 900.0  # ... in which the device drove at least this far
    # ... without its positions spreading wider than this (RMS)
    novelty_max_gyration_m: float = 150.0
    turn_min_deg: float = 50.0  # a claimed turn this sharp (track bearing over turn_span_m) ...
    turn_span_m: float = 25.0
    turn_max_visual_deg: float = 10.0  # ... that the pictures show as less than this rotation
    visual_min_mismatches: int = 2  # contradicted turns in one trip before the trip is flagged
    taint_jump_m: float = 300.0  # an impossible jump this long makes the rest of the trip untrusted
    revisit_cell_res: int = 12  # H3 resolution of the coverage cells (about 9 m edge)
    revisit_min_path_m: float = 1_200.0  # a trip must drive this far before its revisits count
    revisit_after_s: float = 60.0  # a cell (or its neighbour) seen this long before is a revisit
    # ... and a trip with more revisited frames than this (honest 6 min drives: <= 0.35) ...
    revisit_max_share: float = 0.45
    # ... covering fewer distinct cells per km driven (honest ~60-70) is circling
    revisit_max_cells_per_km: float = 45.0
    copy_radius_m: float = 15.0  # other devices' frames this close (claimed) are compared as copies
    copy_max_heading_deg: float = 45.0
    copy_min_ncc: float = 0.9  # fine-detail correlation of one picture re-encoded (others' < 0.86)
    copy_min_inliers: int = 40
    copy_min_frames: int = (
        10  # matched frames before a device counts as uploading another's drive (two honest
    )
    # cars stopped at one light can match a few: the simulator's renders are deterministic)
    camera_min_frames: int = 20  # device-level camera checks need this many frames
    camera_min_path_m: float = 150.0  # ... over this much driving (the scene must change)
    camera_max_static_dark: float = 0.03  # share of the picture dark and unchanging: obstructed
    # median Laplacian variance (honest ~300-800, blurred lens ~35)
    camera_min_sharpness: float = 100.0
    camera_dark_brightness: float = 40.0  # median grey below this ...
    camera_dark_highlights: float = 80.0  # ... with its brightest pixels this dim: underexposed
    # What any car can do between two frames, from the speeds the receiver reported at each:
    # accelerate at most this much on average (a 0-300 km/h in 14 s hypercar) ...
    max_launch_mps2: float = 6.0
    max_brake_mps2: float = 10.0  # ... and brake at most this hard (about 1 g)
    # Map matching (ingest.mapmatch): a frame this far from the road it was matched to (or
    # from any road) is off the road; honest GNSS error (1-2 m RMS, multipath excursions of
    # up to ~5 m) plus half a wide road's width stay well inside it ...
    map_offroad_m: float = 20.0
    map_offroad_min_frames: int = 3  # ... a run this long is flagged (not one wild fix) ...
    map_min_frames: int = 20  # ... and a trip this long is judged whole:
    map_trip_offroad_share: float = 0.1  # more of its frames off the road than this, or
    map_max_breaks_per_km: float = 1.0  # its drivable path lost more often than this a km
    # ... or its frames lie this far from their matched roads at the median: honest trips stay
    # at 1-4 m (GNSS error and the lane's offset from a wide road's centre line; at most 3.6 m
    # over 50 simulated trips of five tuning worlds), a track shifted 30 m at 4-30 m
    map_max_median_m: float = 5.0
    # Another device's track (ingest.places): frames within this of where another device's
    # track puts it at the same moment (two cars cannot share a spot; a car 1 s behind
    # another is 10-20 m behind it) ...
    shared_track_m: float = 6.0
    shared_track_dt_s: float = 1.5  # ... that track known this close in time ...
    shared_track_min_frames: int = 20  # ... again and again ...
    shared_track_min_m: float = 200.0  # ... over this much of the road ...
    # ... while the pictures differ: a median place similarity at least this high is the
    # same pictures (a copy: duplicate_drive decides); re-encoded copies score ~0.95
    shared_track_max_similarity: float = 0.8
    # What other devices saw at the claimed place (ingest.places.find_place_mismatches): their
    # accepted frames claimed within this of a frame, heading within place_max_heading_deg ...
    place_radius_m: float = 10.0
    place_max_heading_deg: float = 30.0
    # ... against its similarity to accepted frames of other places (this far away, a
    # sample of this many from around the trip): the place it claims must look more like it
    # than all but the top 1 - place_else_quantile of them (honest frames fail it 4.7 %, a
    # track thief's 97 %, over the sample seed-5 and rural:1 tuning fleets)
    place_else_m: float = 300.0
    place_else_around_m: float = 3_000.0
    place_else_sample: int = 256
    place_else_pool: int = 20_000  # ... drawn from the newest this many there
    place_else_min: int = 30
    place_else_quantile: float = 0.9
    # ... and a trip with this many such frames, more than this share of them failing, is
    # flagged (honest devices there: at most 8.5 % each)
    place_min_frames: int = 15
    place_max_mismatch_share: float = 0.5


@dataclass(frozen=True)
class Flag:
    check: str
    score: float
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TrackPoint:
    frame_id: int | None
    seq: int
    t: float  # unix seconds of capture
    lat: float
    lon: float
    speed_mps: float | None = None  # what the receiver reported (Doppler), when it did


def unix_s(dt: datetime) -> float:
    return dt.timestamp()


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(a)))


def implied_speed(a: TrackPoint, b: TrackPoint, noise_m: float) -> tuple[float, float]:
    """(distance, speed) between two points, the distance reduced by the GNSS allowance."""
    d = distance_m(a.lat, a.lon, b.lat, b.lon)
    dt = abs(b.t - a.t)
    excess = max(0.0, d - 2 * noise_m)
    return d, (excess / dt if dt > 0 else (math.inf if excess > 0 else 0.0))


def check_motion(
    point: TrackPoint, earlier: Sequence[TrackPoint], policy: FraudPolicy
) -> list[Flag]:
    """Speed, teleport and cloned-key checks of `point` against the same device's earlier frames.

    `earlier` are the device's frames captured before `point` (any order). Each one within
    `clone_window_s` is labelled reachable or not at `max_speed_mps`. Ordered by time, the
    labels of an honest track change at most once (a jump, then a consistent track again);
    a track that keeps switching between reachable and unreachable is two devices reporting
    under one identity at once: a cloned key.
    """
    near = sorted(
        (n for n in earlier if n.seq != point.seq and 0 <= point.t - n.t <= policy.clone_window_s),
        key=lambda n: (n.t, n.seq),
    )
    if not near:
        return []
    labels: list[bool] = []
    worst: tuple[TrackPoint, float, float] | None = None
    for n in near:
        d, v = implied_speed(n, point, policy.gnss_noise_m)
        ok = v <= policy.max_speed_mps
        labels.append(ok)
        if not ok and (worst is None or n.t >= worst[0].t):
            worst = (n, d, v)
    if worst is None:
        return []
    changes = sum(1 for a, b in zip([*labels, True], [*labels, True][1:], strict=False) if a != b)
    other, d, v = worst
    evidence = {
        "other_frame": other.frame_id,
        "other_seq": other.seq,
        "distance_m": round(d, 1),
        "dt_s": round(abs(point.t - other.t), 3),
        "implied_speed_mps": None if math.isinf(v) else round(v, 1),
        "reachable_neighbours": sum(labels),
        "unreachable_neighbours": len(labels) - sum(labels),
    }
    if changes >= 2:
        return [Flag(Check.CLONED_KEY, 1.0, "the device reports from two places at once", evidence)]
    if labels[-1]:
        return []  # the jump was before the latest frame: that frame carries the flag
    if d >= policy.teleport_m:
        return [
            Flag(Check.TELEPORT, 1.0, f"jumped {d / 1000:.1f} km in {evidence['dt_s']} s", evidence)
        ]
    return [
        Flag(Check.IMPOSSIBLE_SPEED, 0.9, "moved faster than any car between two frames", evidence)
    ]


def max_distance_m(v1: float, v2: float, dt: float, policy: FraudPolicy) -> float:
    """The farthest a car gets in `dt` seconds starting at speed `v1` and ending at `v2`:
    full throttle (`max_launch_mps2`), a cruise at `max_speed_mps` if it gets there, full
    braking (`max_brake_mps2`)."""
    up, down, top = policy.max_launch_mps2, policy.max_brake_mps2, policy.max_speed_mps
    v1, v2 = min(max(v1, 0.0), top), min(max(v2, 0.0), top)
    peak = (dt + v1 / up + v2 / down) / (1 / up + 1 / down)
    if peak <= top:
        t1, t2 = max(0.0, (peak - v1) / up), max(0.0, (peak - v2) / down)
        return (v1 + peak) / 2 * t1 + (peak + v2) / 2 * t2
    t1, t2 = (top - v1) / up, (top - v2) / down
    return (v1 + top) / 2 * t1 + (top + v2) / 2 * t2 + top * max(0.0, dt - t1 - t2)


def check_kinematics(prev: TrackPoint, cur: TrackPoint, policy: FraudPolicy) -> list[Flag]:
    """The distance between a device's consecutive frames must be one a car can drive in the
    time between them, starting and ending at the speeds its receiver reported. A position
    jump hidden in a stop (the car stands at a light, its claimed position moves a
    kilometre, then it drives off: no frame is kept while it stands) needs an average speed
    no limit forbids, but not from standing to standing."""
    if prev.speed_mps is None or cur.speed_mps is None:
        return []
    dt = cur.t - prev.t
    if not 0 < dt <= policy.session_gap_s:
        return []
    d = distance_m(prev.lat, prev.lon, cur.lat, cur.lon)
    reach = max_distance_m(prev.speed_mps, cur.speed_mps, dt, policy) + 2 * policy.gnss_noise_m
    if d <= reach:
        return []
    evidence = {
        "other_frame": prev.frame_id,
        "other_seq": prev.seq,
        "distance_m": round(d, 1),
        "dt_s": round(dt, 3),
        "speed_before_mps": round(prev.speed_mps, 2),
        "speed_after_mps": round(cur.speed_mps, 2),
        "max_distance_m": round(reach, 1),
    }
    return [
        Flag(
            Check.IMPOSSIBLE_SPEED,
            0.9,
            f"moved {d:.0f} m in {dt:.1f} s between reported speeds of {prev.speed_mps:.1f} and"
            f" {cur.speed_mps:.1f} m/s; no car covers more than {reach:.0f} m so",
            evidence,
        )
    ]


def check_acceleration(points: Sequence[TrackPoint], policy: FraudPolicy) -> list[Flag]:
    """Three consecutive points (oldest first): the speed change between the two legs."""
    if len(points) < 3:
        return []
    a, b, c = points[-3], points[-2], points[-1]
    dt1, dt2 = b.t - a.t, c.t - b.t
    if dt1 <= 0 or dt2 <= 0:
        return []
    v1 = distance_m(a.lat, a.lon, b.lat, b.lon) / dt1
    v2 = distance_m(b.lat, b.lon, c.lat, c.lon) / dt2
    # GNSS noise on short legs looks like acceleration: allow it explicitly.
    slack = 2 * policy.gnss_noise_m / min(dt1, dt2)
    accel = max(0.0, abs(v2 - v1) - slack) / ((dt1 + dt2) / 2)
    if accel <= policy.max_accel_mps2:
        return []
    evidence = {
        "speed_before_mps": round(v1, 1),
        "speed_after_mps": round(v2, 1),
        "accel_mps2": round(accel, 1),
    }
    return [
        Flag(Check.IMPOSSIBLE_ACCELERATION, 0.8, "changed speed faster than a car can", evidence)
    ]


def check_stationary(
    point: TrackPoint, recent: Sequence[TrackPoint], policy: FraudPolicy
) -> list[Flag]:
    """Many frames from one spot: a device farming coverage without driving.

    `recent` are the device's frames before `point`, newest last. Honest devices sample
    only while moving (every ~8 m), so `stationary_min_frames` frames in a row inside a
    `stationary_radius_m` circle, over at least `stationary_min_span_s`, are farmed, even
    when the claimed positions are jittered to look like motion. The run grows backwards
    from `point` as far as the circle holds.
    """
    window = [point]
    for p in reversed(recent):
        trial = [p, *window]
        lat0 = sum(q.lat for q in trial) / len(trial)
        lon0 = sum(q.lon for q in trial) / len(trial)
        if max(distance_m(lat0, lon0, q.lat, q.lon) for q in trial) > policy.stationary_radius_m:
            break
        window = trial
    if len(window) < policy.stationary_min_frames:
        return []
    span = window[-1].t - window[0].t
    if span < policy.stationary_min_span_s:
        return []
    lat0 = sum(p.lat for p in window) / len(window)
    lon0 = sum(p.lon for p in window) / len(window)
    radius = max(distance_m(lat0, lon0, p.lat, p.lon) for p in window)
    evidence = {"frames": len(window), "radius_m": round(radius, 1), "span_s": round(span, 1)}
    return [
        Flag(Check.STATIONARY_FARMING, 0.9, f"{len(window)} frames within {radius:.0f} m", evidence)
    ]


def check_quality(sharpness: float, brightness: float, policy: FraudPolicy) -> list[Flag]:
    problems = []
    if sharpness < policy.min_sharpness:
        problems.append(f"blurred (sharpness {sharpness:.1f} < {policy.min_sharpness})")
    if brightness < policy.min_brightness:
        problems.append(f"too dark (mean {brightness:.0f})")
    elif brightness > policy.max_brightness:
        problems.append(f"overexposed (mean {brightness:.0f})")
    if not problems:
        return []
    evidence = {"server_sharpness": round(sharpness, 2), "server_brightness": round(brightness, 1)}
    return [Flag(Check.LOW_QUALITY, 0.6, "; ".join(problems), evidence)]


def image_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey difference (0..1) of two reduced frames, at a common 64x36 size."""
    import cv2

    size = (64, 36)
    ga = cv2.resize(a, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    gb = cv2.resize(b, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    return float(np.abs(ga - gb).mean() / 255.0)


def check_visual_motion(
    prev: TrackPoint, cur: TrackPoint, change: float, policy: FraudPolicy
) -> list[Flag]:
    """The picture must change when the claimed position moved: a still camera with a fake track."""
    d = distance_m(prev.lat, prev.lon, cur.lat, cur.lon)
    if d < policy.static_image_min_m or change > policy.static_image_max_change:
        return []
    evidence = {
        "claimed_distance_m": round(d, 1),
        "image_change": round(change, 4),
        "other_frame": prev.frame_id,
    }
    return [
        Flag(
            Check.STATIC_IMAGE_MOVING_GNSS,
            0.9,
            f"the picture did not change over a claimed {d:.0f} m",
            evidence,
        )
    ]


def check_visual_flow(
    prev: TrackPoint, cur: TrackPoint, flow: float, corners: int, policy: FraudPolicy
) -> list[Flag]:
    """Tracked corners stood still while the claimed position moved: the camera did not move."""
    d = distance_m(prev.lat, prev.lon, cur.lat, cur.lon)
    if (
        d < policy.static_image_min_m
        or corners < policy.static_min_corners
        or flow > policy.static_max_flow
    ):
        return []
    evidence = {
        "claimed_distance_m": round(d, 1),
        "median_flow": round(flow, 5),
        "corners": corners,
        "other_frame": prev.frame_id,
    }
    return [
        Flag(
            Check.STATIC_IMAGE_MOVING_GNSS,
            0.9,
            f"nothing in the picture moved over a claimed {d:.0f} m",
            evidence,
        )
    ]


def camera_fault(stats: CameraStats, driven_m: float, policy: FraudPolicy) -> Flag | None:
    """A device whose camera is obstructed, blurred or underexposed over a whole run of frames
    (`stats`: `ingest.imaging.CameraStats`). Per-frame texture or brightness cannot tell a
    smudge from sky or a dark street; across frames of a moving car it can."""
    if stats.frames < policy.camera_min_frames or driven_m < policy.camera_min_path_m:
        return None
    problems = []
    if stats.static_dark_share >= policy.camera_max_static_dark:
        problems.append(
            f"obstructed ({stats.static_dark_share:.0%} of the picture dark and unchanging)"
        )
    if stats.sharpness < policy.camera_min_sharpness:
        problems.append(f"blurred (median sharpness {stats.sharpness:.0f})")
    if (
        stats.brightness < policy.camera_dark_brightness
        and stats.highlights < policy.camera_dark_highlights
    ):
        problems.append(
            f"underexposed (median grey {stats.brightness:.0f}, highlights {stats.highlights:.0f})"
        )
    if not problems:
        return None
    ev = {
        "frames": stats.frames,
        "path_m": round(driven_m),
        "static_dark_share": round(stats.static_dark_share, 4),
        "median_sharpness": round(stats.sharpness, 1),
        "median_brightness": round(stats.brightness, 1),
        "median_highlights": round(stats.highlights, 1),
    }
    return Flag(Check.CAMERA_FAULT, 0.6, "camera fault: " + "; ".join(problems), ev)
