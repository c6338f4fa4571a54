"""Trip-level checks over a device's whole track, run by the periodic audit (`ingest.audit`).

A track is one device's frames in capture order (`ingest.fraud.TrackPoint`); a trip is a run
of them less than `session_gap_s` apart. Each check returns {index: Flag} for the frames it
condemns: the rest of a trip after an impossible jump, circling the same blocks, the trip
of a cloned key, turns of the track the pictures do not show.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from ingest.fraud import Check, Flag, FraudPolicy, TrackPoint, distance_m, implied_speed


def trips(points: Sequence[TrackPoint], policy: FraudPolicy) -> list[tuple[int, int]]:
    """Index ranges [start, end) of the trips in a time-ordered track (split at long gaps)."""
    out, start = [], 0
    for i in range(1, len(points) + 1):
        if i == len(points) or points[i].t - points[i - 1].t > policy.session_gap_s:
            if i > start:
                out.append((start, i))
            start = i
    return out


def check_after_teleport(
    points: Sequence[TrackPoint], jumps: dict[int, Flag], policy: FraudPolicy
) -> dict[int, Flag]:
    """After an impossible jump of `taint_jump_m` or more, the rest of that trip is on a track
    the car cannot have driven: one side of the jump is spoofed, and the receiver that made
    the jump cannot vouch for what follows. `jumps`: index -> the teleport/speed flag."""
    out: dict[int, Flag] = {}
    for start, end in trips(points, policy):
        first = next(
            (
                i
                for i in range(start, end)
                if i in jumps
                and float(jumps[i].evidence.get("distance_m", 0)) >= policy.taint_jump_m
            ),
            None,
        )
        if first is None:
            continue
        ev = {
            "jump_frame": points[first].frame_id,
            "jump_m": jumps[first].evidence.get("distance_m"),
            "frames_after": end - first - 1,
        }
        flag = Flag(
            Check.TRACK_AFTER_TELEPORT,
            0.8,
            f"the trip continues after an impossible {ev['jump_m']} m jump",
            ev,
        )
        for i in range(first + 1, end):
            out[i] = flag
    return out


def check_low_novelty(points: Sequence[TrackPoint], policy: FraudPolicy) -> dict[int, Flag]:
    """Driving round the same few blocks: in a trip window of `novelty_window_s`, at least
    `novelty_min_path_m` driven while the positions stay within `novelty_max_gyration_m`
    (radius of gyration) *and* more than `revisit_max_share` of the window's frames revisit
    cells it covered earlier (`_revisit_share`). Compactness alone is not circling: a
    drive through a small old town stays within 150 m of one spot while it keeps finding
    new streets. Coverage farming, not fraud in the data: flagged so it is excluded from
    rewards, with the numbers as evidence."""
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
            gyration = math.sqrt(
                sum(distance_m(lat0, lon0, p.lat, p.lon) ** 2 for p in seg) / len(seg)
            )
            share = (
                _revisit_share(seg, policy)
                if path >= policy.novelty_min_path_m and gyration <= policy.novelty_max_gyration_m
                else 0.0
            )
            if share > policy.revisit_max_share:
                ev = {
                    "path_m": round(path),
                    "gyration_m": round(gyration, 1),
                    "revisit_share": round(share, 3),
                    "frames": len(seg),
                    "span_s": round(seg[-1].t - seg[0].t),
                }
                flag = Flag(
                    Check.LOW_NOVELTY,
                    0.6,
                    f"drove {path:.0f} m within {gyration:.0f} m (RMS) of one spot, {share:.0%}"
                    " of it over cells covered earlier",
                    ev,
                )
                for k in range(i, j):
                    out[k] = flag
            i = j
    return out


def _revisits(seg: Sequence[TrackPoint], policy: FraudPolicy) -> tuple[int, int]:
    """(frames of `seg` in a cell, or a neighbour, it covered `revisit_after_s` or more
    earlier; distinct cells covered) at H3 resolution `revisit_cell_res`."""
    import h3

    first_seen: dict[str, float] = {}
    revisits = 0
    for p in seg:
        cell = h3.latlng_to_cell(p.lat, p.lon, policy.revisit_cell_res)
        seen = [first_seen[c] for c in h3.grid_disk(cell, 1) if c in first_seen]
        if seen and p.t - min(seen) >= policy.revisit_after_s:
            revisits += 1
        first_seen.setdefault(cell, p.t)
    return revisits, len(first_seen)


def _revisit_share(seg: Sequence[TrackPoint], policy: FraudPolicy) -> float:
    return _revisits(seg, policy)[0] / max(1, len(seg))


def check_revisits(points: Sequence[TrackPoint], policy: FraudPolicy) -> dict[int, Flag]:
    """Coverage novelty: a trip that keeps coming back to cells it already covered.

    Each frame falls in an H3 cell (`revisit_cell_res`); it revisits when that cell or one of
    its neighbours (GNSS error) was covered by a frame of the same trip at least
    `revisit_after_s` earlier (a car waiting at a light is not a revisit). A trip that drove
    `revisit_min_path_m` with more than `revisit_max_share` of its frames revisiting and
    fewer than `revisit_max_cells_per_km` distinct cells per km is circling the same blocks:
    flagged, with both numbers as evidence."""
    out: dict[int, Flag] = {}
    for start, end in trips(points, policy):
        seg = points[start:end]
        path = path_m(seg, policy)
        if path < policy.revisit_min_path_m:
            continue
        revisits, cells = _revisits(seg, policy)
        share = revisits / len(seg)
        per_km = cells / (path / 1000)
        if share <= policy.revisit_max_share or per_km >= policy.revisit_max_cells_per_km:
            continue
        ev = {
            "path_m": round(path),
            "frames": len(seg),
            "revisited_frames": revisits,
            "revisit_share": round(share, 3),
            "distinct_cells": cells,
            "cells_per_km": round(per_km, 1),
            "h3_res": policy.revisit_cell_res,
        }
        flag = Flag(
            Check.LOW_NOVELTY,
            0.6,
            f"{share:.0%} of the frames revisit cells covered earlier in the trip ({path:.0f} m driven)",
            ev,
        )
        for k in range(start, end):
            out[k] = flag
    return out


def check_novelty(points: Sequence[TrackPoint], policy: FraudPolicy) -> dict[int, Flag]:
    """Both low-novelty measures (radius of gyration, cell revisits); a frame that both flag
    carries one flag with both reasons and all the numbers."""
    out = check_low_novelty(points, policy)
    for k, flag in check_revisits(points, policy).items():
        old = out.get(k)
        out[k] = (
            flag
            if old is None
            else Flag(
                Check.LOW_NOVELTY,
                max(old.score, flag.score),
                f"{old.reason}; {flag.reason}",
                {**old.evidence, **flag.evidence},
            )
        )
    return out


def check_clone_period(
    points: Sequence[TrackPoint], cloned: Sequence[int], policy: FraudPolicy
) -> dict[int, Flag]:
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
        ev = {
            "period_start": round(points[inside[0]].t, 3),
            "period_end": round(points[inside[-1]].t, 3),
            "cloned_frames": len(inside),
            "frames_in_trip": end - start,
        }
        flag = Flag(
            Check.CLONED_KEY,
            1.0,
            f"one identity in two places at once ({len(inside)} frames); the whole trip is untrusted",
            ev,
        )
        for k in range(start, end):
            out[k] = flag
    return out


def path_m(points: Sequence[TrackPoint], policy: FraudPolicy) -> float:
    """Distance driven along a track, leaving out impossible legs."""
    return sum(
        d
        for d, v in (
            implied_speed(a, b, policy.gnss_noise_m) for a, b in itertools.pairwise(points)
        )
        if v <= policy.max_speed_mps
    )


def bearing_deg(a: TrackPoint, b: TrackPoint) -> float:
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dl = math.radians(b.lon - a.lon)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def check_visual_turns(
    points: Sequence[TrackPoint], yaw: Sequence[float | None], policy: FraudPolicy
) -> dict[int, Flag]:
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
            a = next(
                (
                    k
                    for k in range(i - 1, start - 1, -1)
                    if distance_m(points[k].lat, points[k].lon, points[i].lat, points[i].lon)
                    >= policy.turn_span_m
                ),
                None,
            )
            b = next(
                (
                    k
                    for k in range(i + 1, end)
                    if distance_m(points[k].lat, points[k].lon, points[i].lat, points[i].lon)
                    >= policy.turn_span_m
                ),
                None,
            )
            if a is None or b is None:
                continue
            claimed = (
                bearing_deg(points[i], points[b]) - bearing_deg(points[a], points[i]) + 180
            ) % 360 - 180
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
            turns.append(
                {
                    "frame": points[i].frame_id,
                    "index": i,
                    "to": b,
                    "claimed_turn_deg": round(claimed),
                    "visual_turn_deg": round(visual, 1),
                }
            )
        if len(turns) < policy.visual_min_mismatches:
            continue
        ev = {
            "contradicted_turns": [
                {k: v for k, v in t.items() if k not in ("index", "to")} for t in turns[:5]
            ],
            "count": len(turns),
        }
        flag = Flag(
            Check.VISUAL_TRACK_MISMATCH,
            0.8,
            f"{len(turns)} turns of the track do not show in the pictures",
            ev,
        )
        for k in range(turns[0]["index"], end):
            out[k] = flag
    return out
