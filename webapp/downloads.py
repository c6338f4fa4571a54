"""Downloads of the map features and coverage as GeoPackage and GeoParquet (geopandas):
GET /downloads/{features|coverage}.{gpkg|parquet}[?bbox=&class=&state=]. Public."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from webapp.api.errors import ApiError, error_response
from webapp.api.features import feature_value, filtered_features
from webapp.api.query import Area, BBox
from webapp.ogc import _coverage_items

MAX_ROWS = 500_000
FORMATS = {
    "gpkg": "application/geopackage+sqlite3",
    "parquet": "application/vnd.apache.parquet",
}


def features_frame(request: HttpRequest) -> gpd.GeoDataFrame:
    raw = request.GET.get("bbox")
    area = Area(BBox.parse(raw)) if raw else None
    query = filtered_features(area, request.GET.get("class"), request.GET.get("state"))
    rows = list(
        query.order_by("id").values_list(
            "id",
            "label",
            "status",
            "lon",
            "lat",
            "uncertainty_m",
            "facing_deg",
            "n_passes",
            "n_devices",
            "first_seen_at",
            "last_seen_at",
        )[: MAX_ROWS + 1]
    )
    if len(rows) > MAX_ROWS:
        raise ApiError(400, f"more than {MAX_ROWS} features: narrow the bbox")
    columns = [
        "id",
        "class",
        "state",
        "lon",
        "lat",
        "uncertainty_m",
        "facing_deg",
        "passes",
        "devices",
        "first_seen_at",
        "last_seen_at",
    ]
    data: dict[str, list[Any]] = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    data["value"] = [feature_value(str(label)) for label in data["class"]]
    geometry = shapely.points(data.pop("lon"), data.pop("lat")) if rows else []
    return gpd.GeoDataFrame(data, geometry=geometry, crs="EPSG:4326")


def coverage_frame(request: HttpRequest) -> gpd.GeoDataFrame:
    raw = request.GET.get("bbox")
    cells = _coverage_items(BBox.parse(raw) if raw else None, None, None)
    return gpd.GeoDataFrame(
        {
            "h3": [c["id"] for c in cells],
            "frames": [c["properties"]["frames"] for c in cells],
            "last_covered_on": [c["properties"]["last_covered_on"] for c in cells],
            "freshness_days": [c["properties"]["freshness_days"] for c in cells],
        },
        geometry=[shapely.geometry.shape(c["geometry"]) for c in cells],
        crs="EPSG:4326",
    )


def download(request: HttpRequest, dataset: str, fmt: str) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return error_response(405, "only GET is allowed")
    if dataset not in ("features", "coverage") or fmt not in FORMATS:
        return error_response(404, "downloads: features or coverage, as .gpkg or .parquet")
    try:
        frame = features_frame(request) if dataset == "features" else coverage_frame(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.headers)
    with tempfile.TemporaryDirectory(prefix="roadmesh-download-") as tmp:
        path = Path(tmp) / f"{dataset}.{fmt}"
        if fmt == "gpkg":
            frame.to_file(path, driver="GPKG", layer=dataset, engine="pyogrio")
        else:
            frame.to_parquet(path)
        data = path.read_bytes()
    stamp = timezone.now().strftime("%Y%m%d")
    response = HttpResponse(data, content_type=FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="roadmesh-{dataset}-{stamp}.{fmt}"'
    response["Cache-Control"] = "public, max-age=300"
    return response
