"""Public read API (v1). Views parse, look up and respond; nothing else."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse

import protocol
from webapp import serverkey
from webapp.fleet.models import Device, Frame, RejectedMessage
from webapp.images import ObjectStoreError, shared_store

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000

logger = logging.getLogger(__name__)


class BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @classmethod
    def parse(cls, raw: str | None) -> BBox:
        if not raw:
            raise BadRequest("bbox is required: bbox=min_lon,min_lat,max_lon,max_lat")
        parts = raw.split(",")
        if len(parts) != 4:
            raise BadRequest(
                "bbox needs four comma-separated numbers: min_lon,min_lat,max_lon,max_lat"
            )
        try:
            min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
        except ValueError:
            raise BadRequest(f"bbox has a value that is not a number: {raw!r}") from None
        if not (
            -180 <= min_lon <= 180
            and -180 <= max_lon <= 180
            and -90 <= min_lat <= 90
            and -90 <= max_lat <= 90
        ):
            raise BadRequest("bbox is outside WGS84 bounds")
        if min_lon > max_lon or min_lat > max_lat:
            raise BadRequest("bbox minimum is greater than its maximum")
        return cls(min_lon, min_lat, max_lon, max_lat)


def _parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"limit must be an integer, got {raw!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return value


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def frame_feature(frame: Frame, request: HttpRequest) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": frame.pk,
        "geometry": {"type": "Point", "coordinates": [frame.lon, frame.lat]},
        "properties": {
            "device": frame.device.device_id,
            "seq": frame.seq,
            "captured_at": frame.captured_at.isoformat().replace("+00:00", "Z"),
            "heading_deg": frame.heading_deg,
            "speed_mps": frame.speed_mps,
            "hdop": frame.hdop,
            "fix_type": frame.fix_type,
            "satellites": frame.satellites,
            "h3_r12": format(frame.h3_r12, "x"),
            "image_sha256": frame.image_sha256,
            "image_url": request.build_absolute_uri(f"/api/v1/images/{frame.image_sha256}.jpg"),
            "quality": {
                "sharpness": frame.quality_sharpness,
                "exposure": frame.quality_exposure,
                "obstruction": frame.quality_obstruction,
            },
            "privacy": {
                "faces_blurred": frame.faces_blurred,
                "plates_blurred": frame.plates_blurred,
            },
            "state": frame.state,
        },
    }


def frames(request: HttpRequest) -> HttpResponse:
    """GET /api/v1/frames?bbox=min_lon,min_lat,max_lon,max_lat[&limit=N] -> GeoJSON."""
    if request.method != "GET":
        return _error(405, "only GET is allowed")
    try:
        bbox = BBox.parse(request.GET.get("bbox"))
        limit = _parse_limit(request.GET.get("limit"))
    except BadRequest as exc:
        return _error(400, str(exc))
    query = (
        Frame.objects.filter(
            lon__gte=bbox.min_lon,
            lon__lte=bbox.max_lon,
            lat__gte=bbox.min_lat,
            lat__lte=bbox.max_lat,
        )
        .select_related("device")
        .order_by("captured_at", "id")[: limit + 1]
    )
    rows = list(query)
    truncated = len(rows) > limit
    body = {
        "type": "FeatureCollection",
        "features": [frame_feature(f, request) for f in rows[:limit]],
        "truncated": truncated,
    }
    return JsonResponse(body, content_type="application/geo+json")


def image(request: HttpRequest, sha256: str) -> HttpResponse:
    """GET /api/v1/images/<sha256>.jpg -> the stored (already blurred) JPEG."""
    if not Frame.objects.filter(image_sha256=sha256).exists():
        return _error(404, "no frame has this image")
    try:
        data = shared_store(settings.SERVER).get(sha256)
    except KeyError:
        return _error(404, "image not in store")
    except ObjectStoreError:
        logger.exception("the image store failed to read %s", sha256)
        return _error(503, "the image store is unavailable")
    response = HttpResponse(data, content_type="image/jpeg")
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


def health(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})


def stats(request: HttpRequest) -> JsonResponse:
    """GET /api/v1/stats -> counts of devices, frames and rejected messages by reason."""
    rejected: dict[str, int] = {}
    for row in RejectedMessage.objects.values("reason").annotate(n=Count("id")):
        rejected[row["reason"]] = row["n"]
    return JsonResponse(
        {
            "devices": Device.objects.count(),
            "frames": Frame.objects.count(),
            "frames_flagged": Frame.objects.filter(state=Frame.State.FLAGGED).count(),
            "frames_pending": Frame.objects.filter(state=Frame.State.PENDING).count(),
            "rejected": rejected,
        }
    )


def server_key(request: HttpRequest) -> JsonResponse:
    """GET /api/v1/server-key -> the public key that signs receipts (docs/protocol.md)."""

    key = serverkey.server_key(settings.SERVER.server_key_file)
    raw = protocol.public_key_bytes(key)
    return JsonResponse(
        {
            "algorithm": "ed25519",
            "public_key": raw.hex(),
            "key_id": protocol.key_id(raw).hex(),
            "fingerprint": protocol.fingerprint(key),
        }
    )
