"""Fraud and plausibility checks: plain functions over track points and image facts.

Each check returns `Flag` values (a check name, a score in 0..1, a sentence and the
evidence numbers). A frame whose highest score reaches `FraudPolicy.flag_score` is stored
as `flagged`: kept as evidence, excluded from rewards. The same functions run at the door
(`ingest.intake`, against the frames already stored) and in the periodic audit
(`ingest.audit`, over whole tracks, plus the image-vs-track check that needs two images).
"""

from __future__ import annotations

import itertools
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


@dataclass(frozen=True)
class FraudPolicy:
    max_speed_mps: float = 70.0  # 252 km/h
    teleport_m: float = 2_000.0  # an impossible jump at least this long is a teleport
    gnss_noise_m: float = 15.0  # allowance per position for GNSS error
    max_accel_mps2: float = 12.0  # about 1.2 g, sustained between frames
    clone_window_s: float = 30.0
    clone_min_frames: int = 3  # cloned-key frames in a trip before the whole trip is flagged (not one GNSS glitch)
    near_duplicate_bits: int = 2  # pHash Hamming distance for "the same picture"
    near_duplicate_same_device_s: float = 120.0  # own frames closer in time than this are not copies
    stationary_radius_m: float = 15.0  # 8 honest frames 8 m apart cannot fit in it
    stationary_min_frames: int = 8
    stationary_min_span_s: float = 90.0  # longer than a red light; the stock edge sends a frame every few s while stopped (GNSS noise)
    min_sharpness: float = 15.0  # server-side Laplacian variance on the reduced decode
    min_brightness: float = 25.0
    max_brightness: float = 235.0
    static_image_min_m: float = 5.0  # claimed movement above which the picture must change
    static_run_min_m: float = 25.0  # ... and a run of such pairs must claim this net displacement
    static_image_max_change: float = 0.012  # mean |difference| / 255 below which it did not
    static_max_flow: float = 0.002  # median corner displacement / width below which nothing moved
    static_min_corners: int = 40  # ... measured on at least this many tracked corners
    session_gap_s: float = 600.0  # frames further apart than this belong to different trips
    novelty_window_s: float = 1800.0  # the loop check looks at trip windows this long
    novelty_min_path_m: float = 900.0  # ... in which the device drove at least this far
    novelty_max_gyration_m: float = 150.0  # ... without its positions spreading wider than this (RMS)
    turn_min_deg: float = 50.0  # a claimed turn this sharp (track bearing over turn_span_m) ...
    turn_span_m: float = 25.0
    turn_max_visual_deg: float = 10.0  # ... that the pictures show as less than this rotation
    visual_min_mismatches: int = 2  # contradicted turns in one trip before the trip is flagged
    taint_jump_m: float = 300.0  # an impossible jump this long makes the rest of the trip untrusted
    revisit_cell_res: int = 12  # H3 resolution of the coverage cells (about 9 m edge)
    revisit_min_path_m: float = 1_200.0  # a trip must drive this far before its revisits count
    revisit_after_s: float = 60.0  # a cell (or its neighbour) seen this long before is a revisit
    revisit_max_share: float = 0.3  # ... and a trip with more revisited frames than this is circling
    copy_radius_m: float = 15.0  # other devices' frames this close (claimed) are compared as copies
    copy_max_heading_deg: float = 45.0
    copy_min_ncc: float = 0.9  # fine-detail correlation of one picture re-encoded (others' < 0.86)
    copy_min_inliers: int = 40
    copy_min_frames: int = 3  # matched frames before a device counts as uploading another's drive
    camera_min_frames: int = 20  # device-level camera checks need this many frames
    camera_min_path_m: float = 150.0  # ... over this much driving (the scene must change)
    camera_max_static_dark: float = 0.03  # share of the picture dark and unchanging: obstructed
    camera_min_sharpness: float = 100.0  # median Laplacian variance (honest ~300-800, blurred lens ~35)
    camera_dark_brightness: float = 40.0  # median grey below this ...
    camera_dark_highlights: float = 80.0  # ... with its brightest pixels this dim: underexposed
    flag_score: float = 0.5


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


def check_motion(point: TrackPoint, earlier: Sequence[TrackPoint], policy: FraudPolicy) -> list[Flag]:
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
        return [Flag(Check.TELEPORT, 1.0, f"jumped {d / 1000:.1f} km in {evidence['dt_s']} s", evidence)]
    return [Flag(Check.IMPOSSIBLE_SPEED, 0.9, "moved faster than any car between two frames", evidence)]


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
    evidence = {"speed_before_mps": round(v1, 1), "speed_after_mps": round(v2, 1), "accel_mps2": round(accel, 1)}
    return [Flag(Check.IMPOSSIBLE_ACCELERATION, 0.8, "changed speed faster than a car can", evidence)]


def check_stationary(point: TrackPoint, recent: Sequence[TrackPoint], policy: FraudPolicy) -> list[Flag]:
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
    return [Flag(Check.STATIONARY_FARMING, 0.9, f"{len(window)} frames within {radius:.0f} m", evidence)]


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
    evidence = {"claimed_distance_m": round(d, 1), "image_change": round(change, 4), "other_frame": prev.frame_id}
    return [
        Flag(Check.STATIC_IMAGE_MOVING_GNSS, 0.9, f"the picture did not change over a claimed {d:.0f} m", evidence)
    ]


def check_visual_flow(prev: TrackPoint, cur: TrackPoint, flow: float, corners: int, policy: FraudPolicy) -> list[Flag]:
    """Tracked corners stood still while the claimed position moved: the camera did not move."""
    d = distance_m(prev.lat, prev.lon, cur.lat, cur.lon)
    if d < policy.static_image_min_m or corners < policy.static_min_corners or flow > policy.static_max_flow:
        return []
    evidence = {"claimed_distance_m": round(d, 1), "median_flow": round(flow, 5), "corners": corners,
                "other_frame": prev.frame_id}
    return [Flag(Check.STATIC_IMAGE_MOVING_GNSS, 0.9, f"nothing in the picture moved over a claimed {d:.0f} m", evidence)]


def trips(points: Sequence[TrackPoint], policy: FraudPolicy) -> list[tuple[int, int]]:
    """Index ranges [start, end) of the trips in a time-ordered track (split at long gaps)."""
    out, start = [], 0
    for i in range(1, len(points) + 1):
        if i == len(points) or points[i].t - points[i - 1].t > policy.session_gap_s:
            if i > start:
                out.append((start, i))
            start = i
    return out


def check_after_teleport(points: Sequence[TrackPoint], jumps: dict[int, Flag], policy: FraudPolicy) -> dict[int, Flag]:
    """After an impossible jump of `taint_jump_m` or more, the rest of that trip is on a track
    the car cannot have driven: one side of the jump is spoofed, and the receiver that made
    the jump cannot vouch for what follows. `jumps`: index -> the teleport/speed flag."""
    out: dict[int, Flag] = {}
    for start, end in trips(points, policy):
        first = next((i for i in range(start, end) if i in jumps
                      and float(jumps[i].evidence.get("distance_m", 0)) >= policy.taint_jump_m), None)
        if first is None:
            continue
        ev = {"jump_frame": points[first].frame_id, "jump_m": jumps[first].evidence.get("distance_m"),
              "frames_after": end - first - 1}
        flag = Flag(Check.TRACK_AFTER_TELEPORT, 0.8,
                    f"the trip continues after an impossible {ev['jump_m']} m jump", ev)
        for i in range(first + 1, end):
            out[i] = flag
    return out


def check_low_novelty(points: Sequence[TrackPoint], policy: FraudPolicy) -> dict[int, Flag]:
    """Driving round the same few blocks: in a trip window of `novelty_window_s`, at least
    `novelty_min_path_m` driven while the positions stay within `novelty_max_gyration_m`
    (radius of gyration). Coverage farming, not fraud in the data: flagged so it is
    excluded from rewards, with the numbers as evidence."""
    out: dict[int, Flag] = {}
    for start, end in trips(points, policy):
        i = start
        while i < end:
            j = i + 1
            while j < end and points[j].t - points[i].t <= policy.novelty_window_s:
                j += 1
            seg = points[i:j]
            path = 0.0
            for a, b in itertools.pairwise(seg):
                d, v = implied_speed(a, b, policy.gnss_noise_m)
                if v <= policy.max_speed_mps:
                    path += d
            lat0 = sum(p.lat for p in seg) / len(seg)
            lon0 = sum(p.lon for p in seg) / len(seg)
            gyration = math.sqrt(sum(distance_m(lat0, lon0, p.lat, p.lon) ** 2 for p in seg) / len(seg))
            if path >= policy.novelty_min_path_m and gyration <= policy.novelty_max_gyration_m:
                ev = {"path_m": round(path), "gyration_m": round(gyration, 1), "frames": len(seg),
                      "span_s": round(seg[-1].t - seg[0].t)}
                flag = Flag(Check.LOW_NOVELTY, 0.6,
                            f"drove {path:.0f} m within {gyration:.0f} m (RMS) of one spot", ev)
                for k in range(i, j):
                    out[k] = flag
            i = j
    return out


def check_revisits(points: Sequence[TrackPoint], policy: FraudPolicy) -> dict[int, Flag]:
    """Coverage novelty: a trip that keeps coming back to cells it already covered.

    Each frame falls in an H3 cell (`revisit_cell_res`); it revisits when that cell or one of
    its neighbours (GNSS error) was covered by a frame of the same trip at least
    `revisit_after_s` earlier (a car waiting at a light is not a revisit). A trip that drove
    `revisit_min_path_m` with more than `revisit_max_share` of its frames revisiting is
    circling the same blocks: flagged, with distinct cells per km and the revisit share."""
    import h3

    out: dict[int, Flag] = {}
    for start, end in trips(points, policy):
        seg = points[start:end]
        path = path_m(seg, policy)
        if path < policy.revisit_min_path_m:
            continue
        first_seen: dict[str, float] = {}
        revisits = 0
        for p in seg:
            cell = h3.latlng_to_cell(p.lat, p.lon, policy.revisit_cell_res)
            seen = [first_seen[c] for c in h3.grid_disk(cell, 1) if c in first_seen]
            if seen and p.t - min(seen) >= policy.revisit_after_s:
                revisits += 1
            first_seen.setdefault(cell, p.t)
        share = revisits / len(seg)
        if share <= policy.revisit_max_share:
            continue
        ev = {"path_m": round(path), "frames": len(seg), "revisited_frames": revisits, "revisit_share": round(share, 3),
              "distinct_cells": len(first_seen), "cells_per_km": round(len(first_seen) / (path / 1000), 1),
              "h3_res": policy.revisit_cell_res}
        flag = Flag(Check.LOW_NOVELTY, 0.6,
                    f"{share:.0%} of the frames revisit cells covered earlier in the trip ({path:.0f} m driven)", ev)
        for k in range(start, end):
            out[k] = flag
    return out


def check_clone_period(points: Sequence[TrackPoint], cloned: Sequence[int], policy: FraudPolicy) -> dict[int, Flag]:
    """Every frame of the trips in which the identity reported from two places at once.

    `cloned`: indexes of the frames that carry a cloned-key flag. Neither device's frames
    can be told apart while both drive, and before or after the overlap the one that drives
    alone is still one of two devices sharing the key: every frame of a trip (frames less
    than `session_gap_s` apart) that holds `clone_min_frames` cloned-key flags is flagged."""
    out: dict[int, Flag] = {}
    marked = set(cloned)
    for start, end in trips(points, policy):
        inside = sorted(marked.intersection(range(start, end)))
        if len(inside) < policy.clone_min_frames:
            continue
        ev = {"period_start": round(points[inside[0]].t, 3), "period_end": round(points[inside[-1]].t, 3),
              "cloned_frames": len(inside), "frames_in_trip": end - start}
        flag = Flag(Check.CLONED_KEY, 1.0,
                    f"one identity in two places at once ({len(inside)} frames); the whole trip is untrusted", ev)
        for k in range(start, end):
            out[k] = flag
    return out


def camera_fault(stats: CameraStats, driven_m: float, policy: FraudPolicy) -> Flag | None:
    """A device whose camera is obstructed, blurred or underexposed over a whole run of frames
    (`stats`: `ingest.imaging.CameraStats`). Per-frame texture or brightness cannot tell a
    smudge from sky or a dark street; across frames of a moving car it can."""
    if stats.frames < policy.camera_min_frames or driven_m < policy.camera_min_path_m:
        return None
    problems = []
    if stats.static_dark_share >= policy.camera_max_static_dark:
        problems.append(f"obstructed ({stats.static_dark_share:.0%} of the picture dark and unchanging)")
    if stats.sharpness < policy.camera_min_sharpness:
        problems.append(f"blurred (median sharpness {stats.sharpness:.0f})")
    if stats.brightness < policy.camera_dark_brightness and stats.highlights < policy.camera_dark_highlights:
        problems.append(f"underexposed (median grey {stats.brightness:.0f}, highlights {stats.highlights:.0f})")
    if not problems:
        return None
    ev = {"frames": stats.frames, "path_m": round(driven_m), "static_dark_share": round(stats.static_dark_share, 4),
          "median_sharpness": round(stats.sharpness, 1), "median_brightness": round(stats.brightness, 1),
          "median_highlights": round(stats.highlights, 1)}
    return Flag(Check.CAMERA_FAULT, 0.6, "camera fault: " + "; ".join(problems), ev)


def path_m(points: Sequence[TrackPoint], policy: FraudPolicy) -> float:
    """Distance driven along a track, leaving out impossible legs."""
    return sum(d for d, v in (implied_speed(a, b, policy.gnss_noise_m) for a, b in itertools.pairwise(points))
               if v <= policy.max_speed_mps)


def bearing_deg(a: TrackPoint, b: TrackPoint) -> float:
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dl = math.radians(b.lon - a.lon)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def check_visual_turns(points: Sequence[TrackPoint], yaw: Sequence[float | None], policy: FraudPolicy) -> dict[int, Flag]:
    """The track turns where the pictures do not: images from another drive (a spoofed track).

    `yaw[i]`: the camera rotation the pictures show from frame i-1 to frame i (None: not
    measured; `yaw[0]` is unused). At each frame the claimed turn is the change of track
    bearing from `turn_span_m` before to `turn_span_m` after it; a turn of `turn_min_deg`
    or more whose pairs all have a visual rotation, summing to less than
    `turn_max_visual_deg`, is contradicted. A trip with `visual_min_mismatches`
    contradicted turns is flagged from the first of them to its end."""
    out: dict[int, Flag] = {}
    for start, end in trips(points, policy):
        turns: list[dict[str, Any]] = []
        for i in range(start + 1, end - 1):
            a = next((k for k in range(i - 1, start - 1, -1)
                      if distance_m(points[k].lat, points[k].lon, points[i].lat, points[i].lon) >= policy.turn_span_m), None)
            b = next((k for k in range(i + 1, end)
                      if distance_m(points[k].lat, points[k].lon, points[i].lat, points[i].lon) >= policy.turn_span_m), None)
            if a is None or b is None:
                continue
            claimed = (bearing_deg(points[i], points[b]) - bearing_deg(points[a], points[i]) + 180) % 360 - 180
            if abs(claimed) < policy.turn_min_deg:
                continue
            seen = yaw[a + 1 : b + 1]
            if any(y is None for y in seen):
                continue
            visual = float(sum(y for y in seen if y is not None))
            if abs(visual) >= policy.turn_max_visual_deg:
                continue
            if turns and turns[-1]["to"] >= a:  # the same turn seen from the next frame
                continue
            turns.append({"frame": points[i].frame_id, "index": i, "to": b,
                          "claimed_turn_deg": round(claimed), "visual_turn_deg": round(visual, 1)})
        if len(turns) < policy.visual_min_mismatches:
            continue
        ev = {"contradicted_turns": [{k: v for k, v in t.items() if k not in ("index", "to")} for t in turns[:5]],
              "count": len(turns)}
        flag = Flag(Check.VISUAL_TRACK_MISMATCH, 0.8,
                    f"{len(turns)} turns of the track do not show in the pictures", ev)
        for k in range(turns[0]["index"], end):
            out[k] = flag
    return out


def fraud_score(flags: Sequence[Flag | dict[str, Any]]) -> float:
    scores = [f.score if isinstance(f, Flag) else float(f.get("score", 0.0)) for f in flags]
    return max(scores, default=0.0)


def merge_flags(existing: Sequence[dict[str, Any]], new: Sequence[Flag]) -> list[dict[str, Any]]:
    """Existing flags plus new ones, one per check (the higher score wins)."""
    by_check: dict[str, dict[str, Any]] = {}
    for item in [*existing, *(f.as_json() for f in new)]:
        if not isinstance(item, dict) or "check" not in item:
            continue
        old = by_check.get(item["check"])
        if old is None or float(item.get("score", 0)) > float(old.get("score", 0)):
            by_check[item["check"]] = item
    return sorted(by_check.values(), key=lambda f: str(f["check"]))
