"""The mapper's database side: detections of rewardable frames in, MapFeature rows out.

`run_mapper()` reads every map-class detection of accepted or processed frames and every
such frame's pose, projects them into one local metric frame (transverse Mercator at the
data's centre, `vision.geo.LocalFrame`), runs `vision.mapper.build_map`, and reconciles
the result with the rows already on the map, in one transaction:

* a new feature matches the existing row of the same class group nearest to it within
  `MATCH_M` (one to one); it keeps that row's id, so review tasks, votes and the change
  feed follow it. Unmatched new features are inserted; rows no feature matched any more
  (their frames were flagged, say) are marked removed.
* A review decision wins over the passes: a rejected feature stays rejected, a feature a
  review confirmed stays confirmed unless later passes that should have seen it did not.
* Doubtful features (one pass, or a split class vote, or a low score) get an open review
  task, once.

Rows are written with `save()`, so the change feed's signals (webapp.api) see each one.
The whole map is recomputed each run (sorting, KD-trees, DBSCAN: O(n log n)).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import h3
import numpy as np
from django.db import transaction
from scipy.spatial import cKDTree

from vision.camera import intrinsics_for
from vision.geo import LocalFrame
from vision.mapper import (
    CLASS_SIZES_M,
    CameraTrack,
    Feature,
    MapperSettings,
    Observation,
    build_map,
    split_label,
)
from webapp.fleet.lifecycle import REWARDABLE
from webapp.fleet.models import Frame
from webapp.mapping.models import Detection, MapFeature, ReviewTask

logger = logging.getLogger(__name__)

MATCH_M = 5.0
DOUBTFUL_SCORE = 0.45


@dataclass
class MapperReport:
    detections: int = 0
    frames: int = 0
    features: int = 0
    created: int = 0
    updated: int = 0
    removed: int = 0
    review_tasks: int = 0

    def line(self) -> str:
        return (
            f"mapped {self.detections} detections of {self.frames} frames into {self.features}"
            f" features: {self.created} new, {self.updated} updated, {self.removed} removed,"
            f" {self.review_tasks} review tasks"
        )


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def load_inputs(
    since: datetime | None = None,
) -> tuple[LocalFrame | None, list[Observation], CameraTrack | None, int]:
    frames = Frame.objects.filter(state__in=REWARDABLE, processed_at__isnull=False)
    if since is not None:
        frames = frames.filter(captured_at__gte=since)
    rows = list(
        frames.values_list(
            "id", "device__device_id", "captured_at", "lat", "lon", "heading_deg"
        ).order_by("id")
    )
    if not rows:
        return None, [], None, 0
    lat = np.array([r[3] for r in rows])
    lon = np.array([r[4] for r in rows])
    local = LocalFrame(float(np.median(lat)), float(np.median(lon)))
    east, north = local.to_enu(lon, lat)
    pose = {r[0]: (float(e), float(n)) for r, e, n in zip(rows, east, north, strict=True)}
    keep = [i for i, r in enumerate(rows) if r[5] is not None]
    track = CameraTrack(
        np.array([rows[i][1] for i in keep]),
        np.array([_ts(rows[i][2]) for i in keep]),
        east[keep],
        north[keep],
        np.array([float(rows[i][5] or 0.0) for i in keep]),
    )
    groups = set(CLASS_SIZES_M)
    dets = Detection.objects.filter(
        frame__state__in=REWARDABLE, frame__processed_at__isnull=False
    ).values_list(
        "id",
        "frame_id",
        "frame__device__device_id",
        "frame__captured_at",
        "frame__heading_deg",
        "frame__intrinsics_ref",
        "frame__image_width",
        "frame__image_height",
        "label",
        "confidence",
        "x0",
        "y0",
        "x1",
        "y1",
    )
    if since is not None:
        dets = dets.filter(frame__captured_at__gte=since)
    obs = []
    intr_cache: dict[tuple[str, int, int], tuple[float, float, float]] = {}
    for did, fid, dev, t, heading, ref, w, h, label, conf, x0, y0, x1, y1 in dets.iterator():
        if heading is None or fid not in pose or split_label(label)[0] not in groups:
            continue
        key = (ref, w or 1280, h or 720)
        if key not in intr_cache:
            k = intrinsics_for(*key)
            intr_cache[key] = (k.fx, k.fy, k.cx)
        fx, fy, cx = intr_cache[key]
        e, n = pose[fid]
        obs.append(
            Observation(
                did,
                fid,
                dev,
                _ts(t),
                e,
                n,
                float(heading),
                label,
                float(conf),
                (x0 + x1) / 2,
                x1 - x0,
                y1 - y0,
                fx,
                fy,
                cx,
            )
        )
    return local, obs, track, len(rows)


def _doubtful(f: Feature) -> bool:
    votes = Counter(p.value for p in f.passes)
    split = len(votes) > 1 and votes.most_common(1)[0][1] < 0.75 * len(f.passes)
    return len(f.passes) < 2 or split or f.score < DOUBTFUL_SCORE


def run_mapper(settings: MapperSettings | None = None) -> MapperReport:
    """Recompute the map from every rewardable frame's detections (see the module doc)."""
    s = settings or MapperSettings()
    report = MapperReport()
    local, obs, track, n_frames = load_inputs()
    report.detections, report.frames = len(obs), n_frames
    features = build_map(obs, track, s) if obs else []
    report.features = len(features)
    with transaction.atomic():
        existing = list(MapFeature.objects.select_for_update().order_by("pk"))
        reviewed = set(
            ReviewTask.objects.filter(state=ReviewTask.State.DECIDED).values_list(
                "feature_id", flat=True
            )
        )
        if local is None:
            return report
        ex_e, ex_n = local.to_enu([r.lon for r in existing], [r.lat for r in existing])
        matched = _match(features, existing, ex_e, ex_n)
        lon, lat = local.to_lonlat([f.east for f in features], [f.north for f in features])
        kept: set[int] = set()
        for i, f in enumerate(features):
            row = matched.get(i)
            created = row is None
            if row is None:
                row = MapFeature(status=MapFeature.Status.CANDIDATE)
            else:
                kept.add(row.pk)
            major, minor, az = f.ellipse()
            if row.pk not in reviewed:  # a reviewer's relabel stays
                row.label = f.label
            row.lat, row.lon = float(lat[i]), float(lon[i])
            row.uncertainty_m = major
            row.ellipse_major_m, row.ellipse_minor_m, row.ellipse_bearing_deg = major, minor, az
            row.facing_deg = f.facing_deg
            row.h3_r12 = _h3(float(lat[i]), float(lon[i]))
            row.n_passes, row.n_devices, row.n_observations = (
                len(f.passes),
                f.devices,
                f.observations,
            )
            row.first_seen_at = datetime.fromtimestamp(f.first_seen, UTC)
            row.last_seen_at = datetime.fromtimestamp(f.last_seen, UTC)
            row.missed_passes = f.missed_passes
            row.score = f.score
            was = None if created else row.status
            row.status = _status(row, f, row.pk in reviewed)
            row.save()
            report.removed += row.status == MapFeature.Status.REMOVED and was != row.status
            Detection.objects.filter(pk__in=f.detection_ids()).update(feature=row)
            report.created += created
            report.updated += not created
            if _doubtful(f) and row.status == MapFeature.Status.CANDIDATE:
                has_task = ReviewTask.objects.filter(feature=row).exists()
                if not has_task:
                    best = max((m for p in f.passes for m in p.members), key=lambda m: m.obs.score)
                    ReviewTask.objects.create(feature=row, detection_id=best.obs.id)
                    report.review_tasks += 1
        for row in existing:
            if row.pk not in kept and row.status not in (
                MapFeature.Status.REMOVED,
                MapFeature.Status.REJECTED,
            ):
                row.status = MapFeature.Status.REMOVED
                row.status_by = "mapper"
                row.save()
                report.removed += 1
    logger.info(report.line())
    return report


def _status(row: MapFeature, f: Feature, reviewed: bool) -> str:
    if row.status == MapFeature.Status.REJECTED:  # only a review rejects; it absorbs its sightings
        row.status_by = "review"
        return row.status
    if f.status == "removed":
        row.status_by = "mapper"
        return MapFeature.Status.REMOVED
    if reviewed and row.status in (MapFeature.Status.CONFIRMED, MapFeature.Status.REJECTED):
        row.status_by = "review"
        return row.status
    row.status_by = "mapper"
    return MapFeature.Status.CONFIRMED if f.status == "confirmed" else MapFeature.Status.CANDIDATE


def _match(
    features: list[Feature], existing: list[MapFeature], ex_e: np.ndarray, ex_n: np.ndarray
) -> dict[int, MapFeature]:
    if not features or not existing:
        return {}
    tree = cKDTree(np.column_stack([np.atleast_1d(ex_e), np.atleast_1d(ex_n)]))
    pairs = []
    for i, f in enumerate(features):
        for j in tree.query_ball_point([f.east, f.north], MATCH_M):
            if split_label(existing[j].label)[0] == f.group:
                d = float(np.hypot(f.east - ex_e[j], f.north - ex_n[j]))
                pairs.append((d, i, j))
    pairs.sort()
    out: dict[int, MapFeature] = {}
    used: set[int] = set()
    for _d, i, j in pairs:
        if i in out or j in used:
            continue
        out[i] = existing[j]
        used.add(j)
    return out


def _h3(lat: float, lon: float) -> int:
    return int(h3.str_to_int(h3.latlng_to_cell(lat, lon, 12)))
