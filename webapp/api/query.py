"""Parsing what the API's queries say: bbox, polygon, ISO week, datetimes and cursors.

Each parser raises `ApiError(400, ...)` with a message naming the parameter.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import shapely
from django.utils.dateparse import parse_datetime
from shapely.geometry.base import BaseGeometry

from webapp.api.errors import ApiError

MAX_POLYGON_VERTICES = 2000


@dataclass(frozen=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @classmethod
    def parse(cls, raw: str | None, name: str = "bbox") -> BBox:
        if not raw:
            raise ApiError(400, f"{name} is required: {name}=min_lon,min_lat,max_lon,max_lat")
        parts = raw.split(",")
        if len(parts) != 4:
            raise ApiError(
                400,
                f"{name} needs four comma-separated numbers: min_lon,min_lat,max_lon,max_lat",
            )
        try:
            min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
        except ValueError:
            raise ApiError(400, f"{name} has a value that is not a number: {raw!r}") from None
        if not (
            -180 <= min_lon <= 180
            and -180 <= max_lon <= 180
            and -90 <= min_lat <= 90
            and -90 <= max_lat <= 90
        ):
            raise ApiError(400, f"{name} is outside WGS84 bounds")
        if min_lon > max_lon or min_lat > max_lat:
            raise ApiError(400, f"{name} minimum is greater than its maximum")
        return cls(min_lon, min_lat, max_lon, max_lat)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.min_lat + self.max_lat) / 2, (self.min_lon + self.max_lon) / 2)

    def area_deg2(self) -> float:
        return (self.max_lon - self.min_lon) * (self.max_lat - self.min_lat)


@dataclass(frozen=True)
class Area:
    """Where a query looks: a bbox, and the polygon inside it when one was given."""

    bbox: BBox
    polygon: BaseGeometry | None = None


def parse_polygon(raw: str) -> BaseGeometry:
    """A WKT POLYGON/MULTIPOLYGON or a GeoJSON geometry, in WGS84 lon/lat."""
    text = raw.strip()
    try:
        if text.startswith("{"):
            geom = shapely.from_geojson(text)
        else:
            geom = shapely.from_wkt(text)
    except (shapely.errors.ShapelyError, ValueError, TypeError):
        raise ApiError(400, "polygon is neither WKT nor a GeoJSON geometry") from None
    if geom is None or geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
        raise ApiError(400, "polygon must be a non-empty Polygon or MultiPolygon")
    if shapely.get_num_coordinates(geom) > MAX_POLYGON_VERTICES:
        raise ApiError(400, f"polygon has more than {MAX_POLYGON_VERTICES} vertices")
    if not geom.is_valid:
        raise ApiError(400, "polygon is not valid (it crosses itself)")
    min_lon, min_lat, max_lon, max_lat = geom.bounds
    if not (-180 <= min_lon and max_lon <= 180 and -90 <= min_lat and max_lat <= 90):
        raise ApiError(400, "polygon is outside WGS84 bounds")
    return geom


def parse_area(bbox: str | None, polygon: str | None, *, required: bool = True) -> Area | None:
    if polygon:
        geom = parse_polygon(polygon)
        return Area(BBox(*geom.bounds), geom)
    if bbox or required:
        if not bbox:
            raise ApiError(400, "bbox or polygon is required")
        return Area(BBox.parse(bbox))
    return None


def parse_when(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    value: datetime | None
    try:
        value = parse_datetime(raw)
        if value is None:
            value = datetime.combine(date.fromisoformat(raw), datetime.min.time())
    except ValueError:
        raise ApiError(400, f"{name} is not an ISO 8601 date or time: {raw!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_week(raw: str | None) -> tuple[datetime, datetime] | None:
    """ISO week `2026-W22` -> [Monday 00:00 UTC, next Monday)."""
    if not raw:
        return None
    try:
        year, _, week = raw.upper().partition("-W")
        start = date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        raise ApiError(400, f"week must be an ISO week like 2026-W22, got {raw!r}") from None
    at = datetime.combine(start, datetime.min.time(), UTC)
    return at, at + timedelta(days=7)


def parse_datetime_interval(raw: str | None) -> tuple[datetime | None, datetime | None]:
    """OGC API `datetime`: an instant, or `start/end` with `..` for an open end."""
    if not raw:
        return None, None
    if "/" not in raw:
        at = parse_when(raw, "datetime")
        return at, at
    start, _, end = raw.partition("/")
    return (
        None if start in ("", "..") else parse_when(start, "datetime"),
        None if end in ("", "..") else parse_when(end, "datetime"),
    )


MAX_ID = 2**63 - 1


def object_id(value: int, what: str) -> int:
    """A path id the database can hold; anything else names no object (404)."""
    if not 0 < value <= MAX_ID:
        raise ApiError(404, f"no {what} {value}")
    return value


def parse_limit(raw: str | int | None, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"limit must be an integer, got {raw!r}") from None
    if not 1 <= value <= maximum:
        raise ApiError(400, f"limit must be between 1 and {maximum}")
    return value


def encode_cursor(values: dict[str, int | str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode()


def decode_cursor(raw: str | None, fields: tuple[str, ...]) -> dict[str, int] | None:
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4)))
        out = {k: int(data[k]) for k in fields}
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise ApiError(400, "cursor is not one this API gave") from None
    if any(not -(2**63) <= v < 2**63 for v in out.values()):
        raise ApiError(400, "cursor is not one this API gave")
    return out
