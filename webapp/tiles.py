"""Vector tiles: GET /tiles/{layer}/{z}/{x}/{y}.mvt for roads, buildings, coverage,
features and frames (Mapbox Vector Tile 2.1, extent 4096, Web Mercator XYZ).

The basemap layers (roads, buildings) come from the road network's GeoJSON in
ROADMESH_BASEMAP_DIR (the sample world by default), indexed once per process, so the
map works offline. Public layers are cached in the process for ROADMESH_TILE_CACHE_SECONDS
and sent with `Cache-Control: public`; the frames layer follows the frame rules
(webapp.api.access) and is private.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h3
import mapbox_vector_tile
import numpy as np
import shapely
from django.conf import settings
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from shapely.geometry.base import BaseGeometry

from webapp.api.access import reader
from webapp.api.errors import ApiError, error_response
from webapp.api.usage import count_at
from webapp.fleet.lifecycle import REWARDABLE
from webapp.fleet.models import Frame
from webapp.mapping.models import MapFeature

EXTENT = 4096
BUFFER = 64 / EXTENT  # of a tile, on each side
MAX_ZOOM = 22
MIN_ZOOM = {"roads": 0, "buildings": 13, "coverage": 5, "features": 10, "frames": 12}
MAX_POINTS = 10_000
CACHE_TILES = 2048
LAYERS = tuple(MIN_ZOOM)
CONTENT_TYPE = "application/vnd.mapbox-vector-tile"


# -- Web Mercator ----------------------------------------------------------------------
def mercator(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lon/lat (degrees) -> world units in [0, 1], y down."""
    lat = np.clip(lat, -85.05112878, 85.05112878)
    x = (lon + 180.0) / 360.0
    y = (1.0 - np.log(np.tan(np.radians(lat)) + 1.0 / np.cos(np.radians(lat))) / math.pi) / 2.0
    return x, y


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) of a tile."""
    n = 2.0**z

    def lat(yy: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * yy / n))))

    return (x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y))


def _to_world(geom: BaseGeometry) -> BaseGeometry:
    def f(coords: np.ndarray) -> np.ndarray:
        wx, wy = mercator(coords[:, 0], coords[:, 1])
        return np.column_stack([wx, wy])

    return shapely.transform(geom, f)


def _to_tile(geom: BaseGeometry, z: int, x: int, y: int) -> BaseGeometry:
    n = 2.0**z

    def f(coords: np.ndarray) -> np.ndarray:
        return np.column_stack([(coords[:, 0] * n - x) * EXTENT, (coords[:, 1] * n - y) * EXTENT])

    return shapely.transform(geom, f)


# -- the basemap ------------------------------------------------------------------------
class Basemap:
    """One GeoJSON layer in world units, with an STRtree over it."""

    def __init__(self, path: Path, keep: tuple[str, ...]):
        self.geoms: list[BaseGeometry] = []
        self.props: list[dict[str, Any]] = []
        if path.is_file():
            data = json.loads(path.read_text())
            for feat in data.get("features", []):
                geom = shapely.geometry.shape(feat["geometry"])
                self.geoms.append(_to_world(geom))
                p = feat.get("properties") or {}
                self.props.append({k: p[k] for k in keep if p.get(k) is not None})
        self.tree = shapely.STRtree(self.geoms)

    def features(self, z: int, x: int, y: int) -> list[dict[str, Any]]:
        n = 2.0**z
        box = shapely.box(
            (x - BUFFER) / n, (y - BUFFER) / n, (x + 1 + BUFFER) / n, (y + 1 + BUFFER) / n
        )
        out = []
        tolerance = 0.5 / (n * EXTENT)  # half a tile pixel
        for i in self.tree.query(box, predicate="intersects"):
            geom = shapely.clip_by_rect(self.geoms[i], *box.bounds)
            if geom.is_empty:
                continue
            if z < 16:
                geom = shapely.simplify(geom, tolerance, preserve_topology=True)
            out.append({"geometry": _to_tile(geom, z, x, y), "properties": self.props[i]})
        return out


_basemaps: dict[str, Basemap] = {}
_basemap_lock = threading.Lock()


def basemap(layer: str) -> Basemap:
    with _basemap_lock:
        if layer not in _basemaps:
            directory = Path(settings.BASEMAP_DIR)
            if layer == "roads":
                _basemaps[layer] = Basemap(
                    directory / "roads.geojson", ("highway", "name", "lanes", "oneway")
                )
            else:
                _basemaps[layer] = Basemap(directory / "buildings.geojson", ("height_m",))
        return _basemaps[layer]


# -- the data layers ----------------------------------------------------------------------
def _bbox_filter(bounds: tuple[float, float, float, float], z: int) -> dict[str, float]:
    min_lon, min_lat, max_lon, max_lat = bounds
    pad_lon = (max_lon - min_lon) * BUFFER
    pad_lat = (max_lat - min_lat) * BUFFER
    return {
        "lon__gte": min_lon - pad_lon,
        "lon__lte": max_lon + pad_lon,
        "lat__gte": min_lat - pad_lat,
        "lat__lte": max_lat + pad_lat,
    }


def _points(
    rows: list[tuple[Any, ...]],
    z: int,
    x: int,
    y: int,
    props: Callable[[tuple[Any, ...]], dict[str, Any]],
) -> list[dict[str, Any]]:
    if not rows:
        return []
    lon = np.array([r[0] for r in rows], dtype=float)
    lat = np.array([r[1] for r in rows], dtype=float)
    wx, wy = mercator(lon, lat)
    n = 2.0**z
    px = np.round((wx * n - x) * EXTENT).astype(int)
    py = np.round((wy * n - y) * EXTENT).astype(int)
    return [
        {"geometry": f"POINT ({px[i]} {py[i]})", "properties": props(r)} for i, r in enumerate(rows)
    ]


def feature_layer(z: int, x: int, y: int) -> list[dict[str, Any]]:
    rows = list(
        MapFeature.objects.filter(**_bbox_filter(tile_bounds(z, x, y), z))
        .exclude(status=MapFeature.Status.REMOVED)
        .values_list("lon", "lat", "id", "label", "status", "n_passes")[:MAX_POINTS]
    )
    return _points(
        rows,
        z,
        x,
        y,
        lambda r: {"id": r[2], "class": r[3], "state": r[4], "passes": r[5]},
    )


def frame_layer(request: HttpRequest, z: int, x: int, y: int) -> list[dict[str, Any]]:
    query = reader(request).frames(Frame.objects.filter(**_bbox_filter(tile_bounds(z, x, y), z)))
    rows = list(
        query.order_by("-captured_at").values_list(
            "lon", "lat", "id", "device__device_id", "seq", "captured_at", "state", "heading_deg"
        )[:MAX_POINTS]
    )
    return _points(
        rows,
        z,
        x,
        y,
        lambda r: {
            "id": r[2],
            "device": r[3],
            "seq": r[4],
            "captured_at": r[5].isoformat(),
            "state": r[6],
            **({"heading_deg": r[7]} if r[7] is not None else {}),
        },
    )


def coverage_resolution(z: int) -> int:
    return 7 if z < 11 else 9 if z < 14 else 12


def coverage_layer(z: int, x: int, y: int) -> list[dict[str, Any]]:
    res = coverage_resolution(z)
    column = f"h3_r{res}"
    rows = (
        Frame.objects.filter(state__in=REWARDABLE, **_bbox_filter(tile_bounds(z, x, y), z))
        .values(column)
        .annotate(n=Count("id"), last=Max("captured_at"))
        .order_by()[:MAX_POINTS]
    )
    now = time.time()
    out = []
    for r in rows:
        if not h3.is_valid_cell(h3.int_to_str(r[column])):
            continue
        ring = [(lon, lat) for lat, lon in h3.cell_to_boundary(h3.int_to_str(r[column]))]
        geom = _to_tile(_to_world(shapely.Polygon(ring)), z, x, y)
        out.append(
            {
                "geometry": geom,
                "properties": {
                    "h3": format(r[column], "x"),
                    "frames": r["n"],
                    "freshness_days": max(0, int((now - r["last"].timestamp()) // 86400)),
                },
            }
        )
    return out


# -- the cache and the view -----------------------------------------------------------------
class TileCache:
    def __init__(self, size: int):
        self.size = size
        self._data: OrderedDict[tuple[str, int, int, int], tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, int, int], ttl: float) -> bytes | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None or time.monotonic() - hit[0] > ttl:
                return None
            self._data.move_to_end(key)
            return hit[1]

    def put(self, key: tuple[str, int, int, int], data: bytes) -> None:
        with self._lock:
            self._data[key] = (time.monotonic(), data)
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


cache = TileCache(CACHE_TILES)
_build_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()
BUILD_WAIT_S = 2.0


def build_slots() -> threading.BoundedSemaphore:
    """At most ROADMESH_EXPENSIVE_CONCURRENCY tiles built at once in this process."""
    global _build_slots
    with _slots_lock:
        if _build_slots is None:
            _build_slots = threading.BoundedSemaphore(settings.WEB.expensive_concurrency)
        return _build_slots


def encode(layer: str, features: list[dict[str, Any]]) -> bytes:
    if not features:
        return b""
    return bytes(
        mapbox_vector_tile.encode(
            [{"name": layer, "features": features}],
            default_options={"extents": EXTENT, "y_coord_down": True},
        )
    )


def build(request: HttpRequest, layer: str, z: int, x: int, y: int) -> bytes:
    if z < MIN_ZOOM[layer]:
        return b""
    if layer in ("roads", "buildings"):
        return encode(layer, basemap(layer).features(z, x, y))
    if layer == "features":
        return encode(layer, feature_layer(z, x, y))
    if layer == "coverage":
        return encode(layer, coverage_layer(z, x, y))
    return encode(layer, frame_layer(request, z, x, y))


def tile(request: HttpRequest, layer: str, z: int, x: int, y: int) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return error_response(405, "only GET is allowed")
    if layer not in LAYERS:
        return error_response(404, f"no layer {layer!r}: one of {', '.join(LAYERS)}")
    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z):
        return error_response(404, f"no tile {z}/{x}/{y}")
    ttl = settings.WEB.tile_cache_seconds
    public = layer != "frames"
    try:
        data = cache.get((layer, z, x, y), ttl) if public and ttl else None
        if data is None:
            slots = build_slots()
            if not slots.acquire(timeout=BUILD_WAIT_S):
                return error_response(
                    429, "the server is busy building other tiles", headers={"Retry-After": "1"}
                )
            try:
                data = build(request, layer, z, x, y)
            finally:
                slots.release()
            if public and ttl:
                cache.put((layer, z, x, y), data)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.headers)
    if layer != "roads" and layer != "buildings":
        min_lon, min_lat, max_lon, max_lat = tile_bounds(z, x, y)
        count_at(request, (min_lat + max_lat) / 2, (min_lon + max_lon) / 2)
    response = HttpResponse(data, content_type=CONTENT_TYPE)
    response["Cache-Control"] = f"public, max-age={ttl}" if public else "private, max-age=60"
    if public:
        response["Access-Control-Allow-Origin"] = "*"
    else:
        response["Vary"] = "Authorization, Cookie"
    return response
