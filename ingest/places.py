"""Image-vs-place checks across devices, run by the audit (`ingest.audit.Auditor.cross_device`).

What a frame shows must agree with what is known at the place it claims. Each frame
carries a global place descriptor (`ingest.imaging.place_descriptor`, computed by the
image-check job on its one decode), so pictures are compared without decoding again.

* `shared_track`: a device that claims another device's track. Two cars cannot be at the
  same spot at the same instant: a device whose frames claim, again and again, within
  `shared_track_m` of where another device's frames put it at the same moment (its track
  interpolated to the frame's time) reports a track that is not its own, unless the
  pictures are copies of one picture (median place similarity `shared_track_max_similarity`
  or more: `duplicate_drive` decides) or show one place, more alike than other places are
  (the `place_mismatch` bar: two cars side by side in adjacent lanes). Who copied whom: a
  track can only be copied once it exists, so the device whose frames reached the server
  later is the one that took it, as for copied pictures.
  Every frame of its trips holding such frames is flagged, with the other device, the
  frames, the distances and the place similarity of the pairs as evidence.
* `place_mismatch`: pictures that do not show the places they claim, at any time. Each
  frame is compared with other devices' accepted frames claimed within `place_radius_m`
  and `place_max_heading_deg` of it (what is known there: each device's median similarity,
  the most alike device's counts), and with a sample of accepted frames of other places
  around its trip. A frame fails when its place looks no more like it than the top
  `1 - place_else_quantile` of the other places do (a
  relative bar: on a country road every picture is sky and tarmac, in a city each street
  differs). A trip with `place_min_frames` judged and more than `place_max_mismatch_share`
  failing is flagged whole: a drive whose pictures match other places as well as the one it
  claims (a track stolen from another device's drive, live or long after; a spoofed or
  shifted track over roads others drove). When the devices it contradicts all reached the
  server after it, they are the ones claiming its places, and it is not flagged.
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
    heading: float | None = None


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
        "heading_deg",
    )
    return [
        _F(i, d, n, c.timestamp(), r.timestamp(), la, lo, bytes(p) if p is not None else None, h)
        for i, d, n, c, r, la, lo, p, h in qs.values_list(*fields)  # type: ignore[attr-defined]
    ]


def find_shared_tracks(frame_ids: list[int], pol: FraudPolicy) -> dict[int, Flag]:
    """`shared_track` flags by frame id (see the module docstring)."""
    mine = _rows(Frame.objects.filter(pk__in=frame_ids))
    if not mine:
        return {}
    pairs: dict[tuple[int, int], list[tuple[_F, _F, float]]] = defaultdict(list)
    tracks_of: dict[int, list[_F]] = {}
    for r in mine:
        lat, lon = _box([r], pol.shared_track_m + 50.0)
        others = _rows(
            Frame.objects.filter(
                lat__range=lat,
                lon__range=lon,
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
        if _alike_there(found, late, pol):
            continue  # two cars side by side (adjacent lanes): both see the same place
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


def find_place_mismatches(frame_ids: list[int], pol: FraudPolicy) -> dict[int, Flag]:
    """`place_mismatch` flags by frame id (see the module docstring)."""
    mine = _rows(Frame.objects.filter(pk__in=frame_ids, place_desc__isnull=False))
    by_device: dict[int, list[_F]] = defaultdict(list)
    for r in mine:
        by_device[r.device].append(r)
    out: dict[int, Flag] = {}
    for device, frames in by_device.items():
        frames.sort(key=lambda f: (f.t, f.id))
        points = [TrackPoint(f.id, 0, f.t, f.lat, f.lon) for f in frames]
        for start, end in tracks.trips(points, pol):
            trip = frames[start:end]
            flag = _place_mismatch(device, trip, pol)
            if flag is not None:
                for f in trip:
                    out[f.id] = flag
    return out


_KNOWN = (Frame.State.ACCEPTED, Frame.State.PROCESSED)


def _known(device: int, lat: tuple[float, float], lon: tuple[float, float]) -> object:
    """Other devices' accepted frames (with a place descriptor) in a lat/lon box."""
    return Frame.objects.filter(
        lat__range=lat, lon__range=lon, state__in=_KNOWN, place_desc__isnull=False
    ).exclude(device_id=device)


def _sample_around(device: int, trip: list[_F], pol: FraudPolicy) -> list[_F]:
    """Up to `place_else_sample` of the newest `place_else_pool` accepted frames of other
    devices around the trip, drawn at random (seeded by the trip): ids first, so a busy
    region costs one index scan, not its descriptors."""
    qs = _known(device, *_box(trip, pol.place_else_around_m))
    ids = list(
        qs.order_by("-captured_at").values_list("pk", flat=True)[: pol.place_else_pool]  # type: ignore[attr-defined]
    )
    if len(ids) > pol.place_else_sample:
        rng = np.random.default_rng(trip[0].id)
        ids = [ids[int(i)] for i in rng.choice(len(ids), pol.place_else_sample, replace=False)]
    return _rows(Frame.objects.filter(pk__in=ids))


def _box(frames: list[_F], margin_m: float) -> tuple[tuple[float, float], tuple[float, float]]:
    lats = [f.lat for f in frames]
    lons = [f.lon for f in frames]
    dlat = margin_m / 111_000.0
    dlon = dlat / max(0.1, float(np.cos(np.radians(float(np.mean(lats))))))
    return (min(lats) - dlat, max(lats) + dlat), (min(lons) - dlon, max(lons) + dlon)


def _metres(frames: list[_F], lat0: float, lon0: float) -> np.ndarray:
    """(n, 2) east/north metres from (lat0, lon0): local enough for a trip's surroundings."""
    k = 111_000.0
    c = float(np.cos(np.radians(lat0)))
    return np.array([((f.lon - lon0) * k * c, (f.lat - lat0) * k) for f in frames]).reshape(-1, 2)


def _place_mismatch(device: int, trip: list[_F], pol: FraudPolicy) -> Flag | None:
    """One trip: do its pictures look like the places it claims, as other devices saw them?"""
    refs = _rows(_known(device, *_box(trip, pol.place_radius_m)))
    if len(refs) < pol.place_min_frames:
        return None
    lat0, lon0 = trip[0].lat, trip[0].lon
    xy, rxy = _metres(trip, lat0, lon0), _metres(refs, lat0, lon0)
    v = place_vectors([f.desc for f in trip if f.desc is not None])
    rv = place_vectors([f.desc for f in refs if f.desc is not None])
    heads = np.array([np.nan if f.heading is None else f.heading for f in refs])
    compared: list[tuple[_F, _F, float]] = []  # (frame, a reference there, similarity)
    for k, f in enumerate(trip):
        near = np.hypot(*(rxy - xy[k]).T) <= pol.place_radius_m
        if f.heading is not None:
            turn = np.abs((heads - f.heading + 180.0) % 360.0 - 180.0)
            near &= ~(turn > pol.place_max_heading_deg)  # an unknown heading is compared
        if not near.any():
            continue
        # each device's typical view of the place (its median: as many frames as it sent
        # there do not raise it), and the device whose view is most like this frame
        idx = np.flatnonzero(near)
        sims = rv[idx] @ v[k]
        views: dict[int, list[int]] = defaultdict(list)
        for j, i in enumerate(idx):
            views[refs[int(i)].device].append(j)
        typical = {d: float(np.median(sims[js])) for d, js in views.items()}
        most = max(typical, key=lambda d: typical[d])
        best = views[most][int(np.argmax(sims[views[most]]))]
        ref, sim = refs[int(idx[best])], typical[most]
        compared.append((f, ref, sim))
    if len(compared) < pol.place_min_frames:
        return None
    pos = {f.id: k for k, f in enumerate(trip)}
    rows = [pos[f.id] for f, _, _ in compared]
    bars = _else_bars(device, trip, rows, v, pol)
    if bars is None:
        return None
    failed: list[tuple[_F, _F, float, float]] = []
    judged = 0
    for (f, ref, sim), bar in zip(compared, bars, strict=True):
        if bar is None:
            continue
        judged += 1
        if sim <= bar:
            failed.append((f, ref, sim, bar))
    if judged < pol.place_min_frames or len(failed) <= pol.place_max_mismatch_share * judged:
        return None
    # the other devices these pictures contradict: if they all reached the server after this
    # trip, they are the ones claiming this device's places (its frames came first)
    others = [ref for _, ref, _, _ in failed]
    if float(np.median([r.received for r in others])) > float(
        np.median([f.received for f, _, _, _ in failed])
    ):
        return None
    names = sorted({r.name for r in others})
    ev = {
        "compared_frames": judged,
        "mismatched_frames": len(failed),
        "median_similarity_there": round(float(np.median([s for _, _, s, _ in failed])), 3),
        "median_bar_elsewhere": round(float(np.median([b for _, _, _, b in failed])), 3),
        "other_devices": names[:10],
        "examples": [
            {"frame": f.id, "other_frame": r.id, "similarity": round(s, 3), "bar": round(b, 3)}
            for f, r, s, b in failed[:5]
        ],
    }
    return Flag(
        Check.PLACE_MISMATCH,
        0.8,
        f"{len(failed)} of {judged} pictures look no more like the places they claim, as"
        f" {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} saw them, than like"
        " other places",
        ev,
    )


def _alike_there(found: list[tuple[_F, _F, float]], late: int, pol: FraudPolicy) -> bool:
    """Whether the two devices' pictures at their shared moments show one place: more than
    half of the pairs more alike than the late device's picture is to all but the top
    `1 - place_else_quantile` of a sample of other places (the `place_mismatch` bar). Two
    cars in adjacent lanes, 3 m apart for a few hundred metres, pass; a thief's pictures
    of somewhere else do not."""
    pairs = [(f, o) if f.device == late else (o, f) for f, o, _ in found]
    pairs = [(a, b) for a, b in pairs if a.desc is not None and b.desc is not None]
    if not pairs:
        return False
    mine = [a for a, _ in pairs]
    va = place_vectors([a.desc for a, _ in pairs if a.desc is not None])
    vb = place_vectors([b.desc for _, b in pairs if b.desc is not None])
    bars = _else_bars(late, mine, list(range(len(mine))), va, pol)
    if bars is None:
        return False
    judged = [(k, bar) for k, bar in enumerate(bars) if bar is not None]
    alike = sum(float(va[k] @ vb[k]) > bar for k, bar in judged)
    return bool(judged) and alike > len(judged) / 2


def _else_bars(
    device: int, region: list[_F], rows: list[int], vectors: np.ndarray, pol: FraudPolicy
) -> list[float | None] | None:
    """What other places look like to the frames `region[k]` for k in `rows` (place vectors
    `vectors[k]`): each one's `place_else_quantile` of its similarity to a sample of other
    devices' accepted frames around `region` (`_sample_around`) farther than
    `place_else_m` from it, the bar its own place must beat. None for a frame with fewer
    than `place_else_min` such frames; None for all when the sample is that small."""
    around = _sample_around(device, region, pol)
    if len(around) < pol.place_else_min:
        return None
    lat0, lon0 = region[0].lat, region[0].lon
    xy, axy = _metres(region, lat0, lon0), _metres(around, lat0, lon0)
    av = place_vectors([f.desc for f in around if f.desc is not None])
    bars: list[float | None] = []
    for k in rows:
        far = np.hypot(*(axy - xy[k]).T) > pol.place_else_m
        if int(far.sum()) < pol.place_else_min:
            bars.append(None)
        else:
            bars.append(float(np.quantile(av[far] @ vectors[k], pol.place_else_quantile)))
    return bars


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
