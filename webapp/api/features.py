"""Map features (public): by bbox or polygon, class, state and `updated_since`, with cursor
pagination; one feature with its observations; the change feed; coverage by bbox."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from typing import Any

import h3
import shapely
from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from ninja import Router

from webapp.api.access import reader
from webapp.api.errors import ApiError
from webapp.api.frames import public_sha, signed_image_url
from webapp.api.models import FeatureEvent
from webapp.api.query import (
    Area,
    BBox,
    decode_cursor,
    encode_cursor,
    object_id,
    parse_area,
    parse_limit,
    parse_when,
)
from webapp.api.usage import count_at
from webapp.fleet.lifecycle import REWARDABLE
from webapp.fleet.models import Frame
from webapp.mapping.models import Detection, MapFeature

router = Router(tags=["features"])

_VALUE = re.compile(r"_(\d+)$")
MAX_OBSERVATIONS = 50
COVERAGE_RESOLUTIONS = (7, 9, 12)
MAX_COVERAGE_CELLS = 20_000


def _iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at else None


def feature_value(label: str) -> int | None:
    """The number a class carries (speed_limit_50 -> 50), else None."""
    m = _VALUE.search(label)
    return int(m.group(1)) if m else None


def ellipse(feature: MapFeature) -> dict[str, float]:
    """The position's uncertainty ellipse (1 sigma, metres): the mapper's axes where it
    stores them, else a circle of `uncertainty_m`."""
    major = getattr(feature, "ellipse_major_m", None) or feature.uncertainty_m
    minor = getattr(feature, "ellipse_minor_m", None) or feature.uncertainty_m
    bearing = getattr(feature, "ellipse_bearing_deg", None) or 0.0
    return {"semi_major_m": major, "semi_minor_m": minor, "bearing_deg": bearing}


def feature_json(feature: MapFeature) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": feature.pk,
        "geometry": {"type": "Point", "coordinates": [feature.lon, feature.lat]},
        "properties": {
            "class": feature.label,
            "value": feature_value(feature.label),
            "state": feature.status,
            "uncertainty_m": feature.uncertainty_m,
            "ellipse": ellipse(feature),
            "facing_deg": feature.facing_deg,
            "first_seen_at": _iso(feature.first_seen_at),
            "last_seen_at": _iso(feature.last_seen_at),
            "passes": feature.n_passes,
            "devices": feature.n_devices,
            "h3_r12": format(feature.h3_r12, "x"),
        },
    }


def _csv(raw: str | None) -> list[str]:
    return [v.strip() for v in (raw or "").split(",") if v.strip()]


def filtered_features(
    area: Area | None,
    classes: str | None = None,
    states: str | None = None,
    updated_since: str | None = None,
) -> QuerySet[MapFeature]:
    query = MapFeature.objects.all()
    if area is not None:
        b = area.bbox
        query = query.filter(
            lon__gte=b.min_lon, lon__lte=b.max_lon, lat__gte=b.min_lat, lat__lte=b.max_lat
        )
    wanted = _csv(classes)
    if wanted:
        query = query.filter(label__in=wanted)
    wanted_states = _csv(states)
    bad = set(wanted_states) - set(MapFeature.Status.values)
    if bad:
        raise ApiError(
            400, f"state must be among {', '.join(MapFeature.Status.values)}: {sorted(bad)}"
        )
    if wanted_states:
        query = query.filter(status__in=wanted_states)
    since = parse_when(updated_since, "updated_since")
    if since is not None:
        changed = FeatureEvent.objects.filter(at__gte=since).values("feature_id")
        query = query.filter(Q(pk__in=changed) | Q(last_seen_at__gte=since))
    return query


def _inside(rows: list[MapFeature], area: Area | None) -> list[MapFeature]:
    if area is None or area.polygon is None or not rows:
        return rows
    shapely.prepare(area.polygon)
    inside = shapely.covers(
        area.polygon, shapely.points([r.lon for r in rows], [r.lat for r in rows])
    )
    return [r for r, ok in zip(rows, inside, strict=True) if ok]


@router.get("/features", summary="Map features by bbox or polygon, class, state, updated_since")
def features(
    request: HttpRequest,
    bbox: str | None = None,
    polygon: str | None = None,
    feature_class: str | None = None,
    state: str | None = None,
    updated_since: str | None = None,
    limit: str | None = None,
    cursor: str | None = None,
) -> HttpResponse:
    """GeoJSON FeatureCollection in id order; `next` is the cursor of the next page.
    `feature_class` and `state` take comma-separated lists (also as `class`)."""
    area = parse_area(bbox, polygon)
    web = settings.WEB
    size = parse_limit(limit, web.page_size, web.max_page_size)
    query = filtered_features(area, feature_class or request.GET.get("class"), state, updated_since)
    after = decode_cursor(cursor, ("id",))
    if after is not None:
        query = query.filter(pk__gt=after["id"])
    # a polygon filters after the bbox: read ahead so a page is rarely short
    ahead = size * 4 if area is not None and area.polygon is not None else size
    batch = list(query.order_by("id")[: ahead + 1])
    more = len(batch) > ahead
    rows = _inside(batch[:ahead], area)
    page = rows[:size]
    next_cursor = None
    if len(rows) > size:
        next_cursor = encode_cursor({"id": page[-1].pk})
    elif more:
        next_cursor = encode_cursor({"id": batch[ahead - 1].pk})
    if area is not None:
        count_at(request, *area.bbox.center)
    body = {
        "type": "FeatureCollection",
        "features": [feature_json(f) for f in page],
        "next": next_cursor,
    }
    return JsonResponse(body, content_type="application/geo+json")


@router.get("/features/{feature_id}", summary="One feature with its observations")
def feature(request: HttpRequest, feature_id: int) -> HttpResponse:
    """The feature and the detections that placed it: each with its box and a signed URL
    of the blurred frame. Device ids and capture times of the evidence are shown to
    readers who may read frames; others get the day only."""
    found = MapFeature.objects.filter(pk=object_id(feature_id, "feature")).first()
    if found is None:
        raise ApiError(404, f"no feature {feature_id}")
    who = reader(request)
    detections = list(
        Detection.objects.filter(feature=found)
        .select_related("frame", "frame__device", "frame__derived_image")
        .order_by("-frame__captured_at")[:MAX_OBSERVATIONS]
    )
    own = {d.frame_id for d in detections if who.user and d.frame.device.owner_id == who.user.pk}
    observations = []
    for d in detections:
        full = who.reads_every_frame or d.frame_id in own
        observations.append(
            {
                "detection": d.pk,
                "class": d.label,
                "confidence": d.confidence,
                "box": [d.x0, d.y0, d.x1, d.y1],
                "image_url": signed_image_url(request, public_sha(d.frame)),
                "image_size": [d.frame.image_width, d.frame.image_height],
                "heading_deg": d.frame.heading_deg,
                "captured_on": d.frame.captured_at.date().isoformat(),
                **(
                    {
                        "frame": d.frame_id,
                        "device": d.frame.device.device_id,
                        "captured_at": _iso(d.frame.captured_at),
                    }
                    if full
                    else {}
                ),
            }
        )
    body = feature_json(found)
    body["properties"]["observations"] = observations
    count_at(request, found.lat, found.lon)
    return JsonResponse(body, content_type="application/geo+json")


@router.get("/changes", summary="The change feed: features added, moved or removed")
def changes(request: HttpRequest, cursor: str | None = None, limit: str | None = None) -> Any:
    """Events after `cursor` (none: from the start), oldest first. Keep `next` and ask again
    with it later; an empty `events` list means you are up to date."""
    web = settings.WEB
    size = parse_limit(limit, web.max_page_size, web.max_page_size)
    after = decode_cursor(cursor, ("event",))
    query = FeatureEvent.objects.order_by("id")
    if after is not None:
        query = query.filter(pk__gt=after["event"])
    rows = list(query[:size])
    last = rows[-1].pk if rows else (after["event"] if after else 0)
    return {
        "events": [
            {
                "event": e.pk,
                "kind": e.kind,
                "feature": e.feature_id,
                "at": _iso(e.at),
                "class": e.label,
                "state": e.status,
                "position": [e.lon, e.lat],
                "from_position": [e.from_lon, e.from_lat] if e.from_lat is not None else None,
            }
            for e in rows
        ],
        "next": encode_cursor({"event": last}),
        "more": len(rows) == size,
    }


# -- coverage --------------------------------------------------------------------------
def resolution_for(bbox: BBox) -> int:
    area = bbox.area_deg2()
    if area > 0.5:
        return 7
    if area > 0.004:
        return 9
    return 12


def coverage_cells(bbox: BBox, resolution: int) -> list[tuple[int, int, datetime]]:
    """(cell, frames, last captured) of accepted frames in the bbox at res 7, 9 or 12."""
    column = f"h3_r{resolution}"
    rows = (
        Frame.objects.filter(
            lon__gte=bbox.min_lon,
            lon__lte=bbox.max_lon,
            lat__gte=bbox.min_lat,
            lat__lte=bbox.max_lat,
            state__in=REWARDABLE,
        )
        .values(column)
        .annotate(n=Count("id"), last=Max("captured_at"))
        .order_by()
    )
    return [(r[column], r["n"], r["last"]) for r in rows[: MAX_COVERAGE_CELLS + 1]]


def freshness_days(last: datetime, now: datetime) -> int:
    return max(0, (now - last).days)


@router.get("/coverage", summary="Coverage by bbox: H3 cells with frames and freshness")
def coverage(
    request: HttpRequest, bbox: str | None = None, resolution: int | None = None
) -> HttpResponse:
    """GeoJSON hexagons of the H3 cells (res 7, 9 or 12; default by bbox size) that accepted
    frames cover: how many frames, and the day and age of the newest."""
    area = BBox.parse(bbox)
    res = resolution if resolution is not None else resolution_for(area)
    if res not in COVERAGE_RESOLUTIONS:
        raise ApiError(400, "resolution must be 7, 9 or 12")
    cells = coverage_cells(area, res)
    if len(cells) > MAX_COVERAGE_CELLS:
        raise ApiError(400, "too many cells for this bbox: use a coarser resolution")
    now = timezone.now()
    count_at(request, *area.center)
    features = []
    for cell, n, last in cells:
        if not h3.is_valid_cell(h3.int_to_str(cell)):
            continue
        ring = [[lon, lat] for lat, lon in h3.cell_to_boundary(h3.int_to_str(cell))]
        ring.append(ring[0])
        features.append(
            {
                "type": "Feature",
                "id": format(cell, "x"),
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "h3": format(cell, "x"),
                    "resolution": res,
                    "frames": n,
                    "last_covered_on": last.date().isoformat(),
                    "freshness_days": freshness_days(last, now),
                },
            }
        )
    return JsonResponse(
        {"type": "FeatureCollection", "features": features}, content_type="application/geo+json"
    )


def class_counts() -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for label, n in MapFeature.objects.values_list("label").annotate(n=Count("id")):
        out[label] = n
    return dict(out)
