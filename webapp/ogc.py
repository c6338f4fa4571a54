"""OGC API - Features (Part 1: Core, GeoJSON) over the map features and coverage, so QGIS
and GDAL (driver OAPIF) read them with no plug-in: /ogc/, /ogc/conformance,
/ogc/collections, /ogc/collections/{id}, .../items?bbox=&datetime=&limit=&offset=,
.../items/{featureId}. Public, like the API's features and coverage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import h3
from django.conf import settings
from django.db.models import Count, Max, Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from webapp.api.errors import ApiError, error_response
from webapp.api.features import feature_json, filtered_features
from webapp.api.query import BBox, parse_datetime_interval, parse_limit
from webapp.api.usage import count_at
from webapp.fleet.lifecycle import REWARDABLE
from webapp.fleet.models import Frame
from webapp.mapping.models import MapFeature

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
COVERAGE_RES = 9
GEOJSON = "application/geo+json"


def _json(body: dict[str, Any], content_type: str = "application/json") -> JsonResponse:
    return JsonResponse(body, content_type=content_type)


def _url(request: HttpRequest, path: str) -> str:
    return request.build_absolute_uri(path)


def _get_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return error_response(405, "only GET is allowed")
        try:
            return view(request, *args, **kwargs)
        except ApiError as exc:
            return error_response(exc.status, exc.message, exc.headers)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


@_get_only
def landing(request: HttpRequest) -> HttpResponse:
    return _json(
        {
            "title": "RoadMesh",
            "description": "Map features and coverage of the RoadMesh street-mapping network",
            "links": [
                {"href": _url(request, "/ogc/"), "rel": "self", "type": "application/json"},
                {
                    "href": _url(request, "/api/v1/schema"),
                    "rel": "service-desc",
                    "type": "application/vnd.oai.openapi+json;version=3.0",
                },
                {"href": _url(request, "/api/v1/docs"), "rel": "service-doc", "type": "text/html"},
                {
                    "href": _url(request, "/ogc/conformance"),
                    "rel": "conformance",
                    "type": "application/json",
                },
                {
                    "href": _url(request, "/ogc/collections"),
                    "rel": "data",
                    "type": "application/json",
                },
            ],
        }
    )


@_get_only
def conformance(request: HttpRequest) -> HttpResponse:
    return _json({"conformsTo": CONFORMANCE})


def _extent(kind: str) -> dict[str, Any]:
    if kind == "features":
        agg = MapFeature.objects.aggregate(
            a=Min("lon"),
            b=Min("lat"),
            c=Max("lon"),
            d=Max("lat"),
            t0=Min("first_seen_at"),
            t1=Max("last_seen_at"),
        )
    else:
        agg = Frame.objects.filter(state__in=REWARDABLE).aggregate(
            a=Min("lon"),
            b=Min("lat"),
            c=Max("lon"),
            d=Max("lat"),
            t0=Min("captured_at"),
            t1=Max("captured_at"),
        )
    bbox = (
        [agg["a"], agg["b"], agg["c"], agg["d"]] if agg["a"] is not None else [-180, -90, 180, 90]
    )
    interval = [
        agg["t0"].isoformat() if agg["t0"] else None,
        agg["t1"].isoformat() if agg["t1"] else None,
    ]
    return {"spatial": {"bbox": [bbox], "crs": CRS84}, "temporal": {"interval": [interval]}}


COLLECTIONS = {
    "features": ("Map features", "Traffic signs, lights, hydrants ... placed from the frames"),
    "coverage": (
        "Coverage",
        f"H3 resolution-{COVERAGE_RES} cells covered by accepted frames, with freshness",
    ),
}


def _collection(request: HttpRequest, cid: str) -> dict[str, Any]:
    title, description = COLLECTIONS[cid]
    base = f"/ogc/collections/{cid}"
    return {
        "id": cid,
        "title": title,
        "description": description,
        "itemType": "feature",
        "crs": [CRS84],
        "extent": _extent(cid),
        "links": [
            {"href": _url(request, base), "rel": "self", "type": "application/json"},
            {"href": _url(request, base + "/items"), "rel": "items", "type": GEOJSON},
        ],
    }


@_get_only
def collections(request: HttpRequest) -> HttpResponse:
    return _json(
        {
            "links": [
                {
                    "href": _url(request, "/ogc/collections"),
                    "rel": "self",
                    "type": "application/json",
                }
            ],
            "collections": [_collection(request, cid) for cid in COLLECTIONS],
        }
    )


@_get_only
def collection(request: HttpRequest, cid: str) -> HttpResponse:
    if cid not in COLLECTIONS:
        return error_response(404, f"no collection {cid!r}")
    return _json(_collection(request, cid))


def _offset(raw: str | None) -> int:
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "offset must be an integer") from None
    if value < 0:
        raise ApiError(400, "offset must not be negative")
    return value


def _coverage_items(
    bbox: BBox | None, start: datetime | None, end: datetime | None
) -> list[dict[str, Any]]:
    query = Frame.objects.filter(state__in=REWARDABLE)
    if bbox is not None:
        query = query.filter(
            lon__gte=bbox.min_lon,
            lon__lte=bbox.max_lon,
            lat__gte=bbox.min_lat,
            lat__lte=bbox.max_lat,
        )
    rows = query.values("h3_r9").annotate(n=Count("id"), last=Max("captured_at")).order_by("h3_r9")
    now = timezone.now()
    out = []
    for r in rows:
        if not h3.is_valid_cell(h3.int_to_str(r["h3_r9"])):
            continue
        if (start is not None and r["last"] < start) or (end is not None and r["last"] > end):
            continue
        out.append(coverage_item(r["h3_r9"], r["n"], r["last"], now))
    return out


def coverage_item(cell: int, frames: int, last: datetime, now: datetime) -> dict[str, Any]:
    ring = [[lon, lat] for lat, lon in h3.cell_to_boundary(h3.int_to_str(cell))]
    ring.append(ring[0])
    return {
        "type": "Feature",
        "id": format(cell, "x"),
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {
            "h3": format(cell, "x"),
            "frames": frames,
            "last_covered_on": last.date().isoformat(),
            "freshness_days": max(0, (now - last).days),
        },
    }


@_get_only
def items(request: HttpRequest, cid: str) -> HttpResponse:
    if cid not in COLLECTIONS:
        return error_response(404, f"no collection {cid!r}")
    web = settings.WEB
    limit = parse_limit(request.GET.get("limit"), web.page_size, web.max_page_size)
    offset = _offset(request.GET.get("offset"))
    raw_bbox = request.GET.get("bbox")
    bbox = BBox.parse(raw_bbox) if raw_bbox else None
    start, end = parse_datetime_interval(request.GET.get("datetime"))
    if cid == "features":
        query = filtered_features(None, request.GET.get("class"), request.GET.get("state"))
        if bbox is not None:
            query = query.filter(
                lon__gte=bbox.min_lon,
                lon__lte=bbox.max_lon,
                lat__gte=bbox.min_lat,
                lat__lte=bbox.max_lat,
            )
        if start is not None:
            query = query.filter(last_seen_at__gte=start)
        if end is not None:
            query = query.filter(first_seen_at__lte=end)
        matched = query.count()
        page = [feature_json(f) for f in query.order_by("id")[offset : offset + limit]]
    else:
        every = _coverage_items(bbox, start, end)
        matched = len(every)
        page = every[offset : offset + limit]
    if bbox is not None:
        count_at(request, *bbox.center)
    base = f"/ogc/collections/{cid}/items"
    keep = {k: v for k, v in request.GET.items() if k not in ("offset",)}
    keep["limit"] = str(limit)

    def link(rel: str, at: int) -> dict[str, str]:
        query = "&".join(f"{k}={v}" for k, v in {**keep, "offset": str(at)}.items())
        return {"href": _url(request, f"{base}?{query}"), "rel": rel, "type": GEOJSON}

    links = [link("self", offset)]
    if offset + limit < matched:
        links.append(link("next", offset + limit))
    return _json(
        {
            "type": "FeatureCollection",
            "features": page,
            "numberMatched": matched,
            "numberReturned": len(page),
            "timeStamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "links": links,
        },
        GEOJSON,
    )


@_get_only
def item(request: HttpRequest, cid: str, fid: str) -> HttpResponse:
    if cid == "features":
        try:
            found = MapFeature.objects.filter(pk=int(fid)).first()
        except ValueError:
            found = None
        if found is None:
            return error_response(404, f"no feature {fid!r}")
        body = feature_json(found)
    elif cid == "coverage":
        try:
            cell = int(fid, 16)
            ok = (
                h3.is_valid_cell(h3.int_to_str(cell))
                and h3.get_resolution(h3.int_to_str(cell)) == COVERAGE_RES
            )
        except (ValueError, TypeError):
            ok = False
        row: dict[str, Any] = (
            Frame.objects.filter(state__in=REWARDABLE, h3_r9=cell).aggregate(
                n=Count("id"), last=Max("captured_at")
            )
            if ok
            else {"n": 0}
        )
        if not row["n"]:
            return error_response(404, f"no covered cell {fid!r}")
        body = coverage_item(cell, row["n"], row["last"], timezone.now())
    else:
        return error_response(404, f"no collection {cid!r}")
    body["links"] = [
        {
            "href": _url(request, f"/ogc/collections/{cid}/items/{fid}"),
            "rel": "self",
            "type": GEOJSON,
        },
        {
            "href": _url(request, f"/ogc/collections/{cid}"),
            "rel": "collection",
            "type": "application/json",
        },
    ]
    return _json(body, GEOJSON)
