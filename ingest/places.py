"""Image-vs-place checks across devices, run by the audit (`ingest.audit.Auditor.cross_device`).

What a frame shows must agree with what is known at the place it claims. Each frame
carries a global place descriptor (`ingest.imaging.place_descriptor`, computed by the
image-check job on its one decode), so pictures are compared without decoding again.

* `shared_track`: a device that claims another device's track. Two cars cannot be at the
  same spot at the same instant: a device whose frames claim, again and again, within
  `shared_track_m` of where another device's frames put it at the same moment (its track
  interpolated to the frame's time) reports a track that is not its own, unless the two
  pictures show the same place (then they are copies of one picture: `duplicate_drive`
  decides). Who copied whom: a track can only be copied once it exists, so the device
  whose frames reached the server later is the one that took it, as for copied pictures.
  Every frame of its trips holding such frames is flagged, with the other device, the
  frames, the distances and the place similarity of the pairs as evidence.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ingest import tracks
from ingest.fraud import Check, Flag, FraudPolicy, TrackPoint, distance_m
from ingest.imaging import place_vectors
from webapp.fleet.models import Frame

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _F:
    id: int
    device: int
    name: str
    t: float
    received: float
    lat: float
    lon: float
    desc: bytes | None


def _rows(qs: object) -> list[_F]:
    fields = (
        "id",
        "device_id",
        "device__device_id",
        "captured_at",
        "received_at",
        "lat",
        "lon",
        "place_desc",
    )
    return [
        _F(i, d, n, c.timestamp(), r.timestamp(), la, lo, bytes(p) if p is not None else None)
        for i, d, n, c, r, la, lo, p in qs.values_list(*fields)  # type: ignore[attr-defined]
    ]


def find_shared_tracks(frame_ids: list[int], pol: FraudPolicy) -> dict[int, Flag]:
    """`shared_track` flags by frame id (see the module docstring)."""
    mine = _rows(Frame.objects.filter(pk__in=frame_ids))
    if not mine:
        return {}
    pairs: dict[tuple[int, int], list[tuple[_F, _F, float]]] = defaultdict(list)
    dlat = (pol.shared_track_m + 50.0) / 111_000.0
    tracks_of: dict[int, list[_F]] = {}
    for r in mine:
        dlon = dlat / max(0.1, float(np.cos(np.radians(r.lat))))
        others = _rows(
            Frame.objects.filter(
                lat__range=(r.lat - dlat, r.lat + dlat),
                lon__range=(r.lon - dlon, r.lon + dlon),
                captured_at__range=_around(r.t, pol.shared_track_dt_s),
            ).exclude(device_id=r.device)
        )
        for dev in {o.device for o in others}:
            if dev not in tracks_of:
                tracks_of[dev] = _track_near(dev, r.t, pol)
            where = _at(tracks_of[dev], r.t, pol.shared_track_dt_s)
            if where is None:
                continue
            d = distance_m(r.lat, r.lon, where[0], where[1])
            if d <= pol.shared_track_m:
                key = (min(r.device, dev), max(r.device, dev))
                near = min((o for o in others if o.device == dev), key=lambda o: abs(o.t - r.t))
                pairs[key].append((r, near, d))
    out: dict[int, Flag] = {}
    for (da, db), found in pairs.items():
        frames = {f.id for f, _, _ in found}
        if len(frames) < pol.shared_track_min_frames:
            continue
        side = {da: [], db: []}  # type: dict[int, list[_F]]
        for f, o, _ in found:
            side[f.device].append(f)
            side[o.device].append(o)
        span = max((_span_m(v) for v in side.values() if v), default=0.0)
        if span < pol.shared_track_min_m:
            continue
        sims = _similarities(found)
        if sims and float(np.median(sims)) >= pol.shared_track_max_similarity:
            continue  # the same pictures: a copy, for duplicate_drive
        late = max(
            (da, db),
            key=lambda d: float(np.median([f.received for f in side[d]])) if side[d] else 0.0,
        )
        other = db if late == da else da
        name = next((f.name for f in side[other]), str(other))
        ev = {
            "other_device": name,
            "shared_frames": len(frames),
            "span_m": round(span),
            "median_apart_m": round(float(np.median([d for _, _, d in found])), 1),
            "median_place_similarity": round(float(np.median(sims)), 3) if sims else None,
            "examples": [
                {"frame": f.id, "other_frame": o.id, "apart_m": round(d, 1)}
                for f, o, d in found[:5]
            ],
        }
        flag = Flag(
            Check.SHARED_TRACK,
            0.9,
            f"claims {name}'s track: at its places at its times ({len(frames)} frames), with"
            " pictures of somewhere else",
            ev,
        )
        track = _rows(Frame.objects.filter(device_id=late).order_by("captured_at", "seq"))
        points = [TrackPoint(f.id, 0, f.t, f.lat, f.lon) for f in track]
        hit = {f.id for f in side[late]}
        for start, end in tracks.trips(points, pol):
            if any(points[k].frame_id in hit for k in range(start, end)):
                for k in range(start, end):
                    out[track[k].id] = flag
    return out


def _around(t: float, dt: float) -> tuple[object, object]:
    from datetime import UTC, datetime

    return (
        datetime.fromtimestamp(t - dt, UTC),
        datetime.fromtimestamp(t + dt, UTC),
    )


def _track_near(device: int, t: float, pol: FraudPolicy) -> list[_F]:
    """A device's frames from a minute before to a minute after `t`."""
    lo, hi = _around(t, 60.0)
    return _rows(
        Frame.objects.filter(device_id=device, captured_at__range=(lo, hi)).order_by("captured_at")
    )


def _at(track: list[_F], t: float, max_gap_s: float) -> tuple[float, float] | None:
    """Where a track puts the device at time t (linear between its frames), when it has
    frames within `max_gap_s` on both sides (or one that close)."""
    ts = [f.t for f in track]
    k = int(np.searchsorted(ts, t))
    before = track[k - 1] if k > 0 else None
    after = track[k] if k < len(track) else None
    if before is not None and after is not None and after.t - before.t <= 2 * max_gap_s:
        w = 0.0 if after.t == before.t else (t - before.t) / (after.t - before.t)
        return before.lat + w * (after.lat - before.lat), before.lon + w * (after.lon - before.lon)
    for f in (before, after):
        if f is not None and abs(f.t - t) <= max_gap_s:
            return f.lat, f.lon
    return None


def _span_m(frames: list[_F]) -> float:
    fs = sorted(frames, key=lambda f: f.t)
    return sum(distance_m(a.lat, a.lon, b.lat, b.lon) for a, b in itertools.pairwise(fs))


def _similarities(found: list[tuple[_F, _F, float]]) -> list[float]:
    with_desc = [(f, o) for f, o, _ in found if f.desc is not None and o.desc is not None]
    if not with_desc:
        return []
    a = place_vectors([f.desc for f, _ in with_desc if f.desc is not None])
    b = place_vectors([o.desc for _, o in with_desc if o.desc is not None])
    return [float(x) for x in np.einsum("ij,ij->i", a, b)]
