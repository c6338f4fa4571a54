"""Frames, their images and drives (need an API key or the owner's login: webapp.api.access).

Each frame carries its provenance: the device's public key, the signature and the
envelope fields it covers, so a consumer can check it themselves (docs/api.md).
Image URLs in answers are signed and expire (ROADMESH_IMAGE_URL_SECONDS).
"""

from __future__ import annotations

import hmac
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import shapely
from django.conf import settings
from django.core import signing
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router

from webapp.api.access import reader
from webapp.api.errors import ApiError
from webapp.api.query import Area, encode_cursor, object_id, parse_area, parse_limit, parse_week
from webapp.api.query import decode_cursor as _decode_cursor
from webapp.api.usage import count_at
from webapp.fleet.models import Frame
from webapp.images import ObjectStoreError, shared_store

logger = logging.getLogger(__name__)
router = Router(tags=["frames"])

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# columns a frame answer does not show (the thumbnail alone is 2.3 KB a row)
UNSHOWN = ("thumb", "flags", "device__trust_evidence", "device__mqtt_password_hash")
DRIVE_GAP = timedelta(minutes=5)  # a longer gap between two frames starts a new drive
MAX_DRIVE_FRAMES = 50_000


def public_sha(frame: Frame) -> str:
    """The image the API shows of a frame: the server's re-blurred derivation where the
    privacy re-check made one, else the device's (already blurred) original."""
    try:
        return frame.derived_image.image_sha256  # type: ignore[attr-defined,no-any-return]
    except ObjectDoesNotExist:
        return frame.image_sha256


def frames_showing(sha256: str) -> QuerySet[Frame]:
    """Frames whose public image has this hash (an original replaced by a derived image is
    not public: it held faces or plates the device missed)."""
    return Frame.objects.filter(
        Q(derived_image__image_sha256=sha256) | Q(image_sha256=sha256, derived_image__isnull=True)
    )


def image_signature(sha256: str, expires: int) -> str:
    return signing.Signer(salt="roadmesh.image").signature(f"{sha256}:{expires}")


class ImageUrls:
    """Signed image URLs for one answer: one expiry, one base, one signer."""

    def __init__(self, request: HttpRequest):
        self.expires = int(time.time()) + settings.WEB.image_url_seconds
        self.base = request.build_absolute_uri("/api/v1/images/")
        self.signer = signing.Signer(salt="roadmesh.image")

    def url(self, sha256: str) -> str:
        sig = self.signer.signature(f"{sha256}:{self.expires}")
        return f"{self.base}{sha256}.jpg?expires={self.expires}&sig={sig}"


def signed_image_url(request: HttpRequest, sha256: str) -> str:
    return ImageUrls(request).url(sha256)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def provenance(frame: Frame) -> dict[str, Any]:
    """What a consumer needs to rebuild the signed bytes (protocol.canonical_bytes) and
    check the device's signature: every envelope field, in its wire units."""
    signature = getattr(frame, "signature", None)
    return {
        "public_key": frame.device.public_key_hex,
        "signature": bytes(signature).hex() if signature else None,
        "envelope": {
            "version": 1,
            "device_id": frame.device.device_id,
            "seq": frame.seq,
            "captured_at_us": (frame.captured_at - EPOCH) // timedelta(microseconds=1),
            "lat": frame.lat,
            "lon": frame.lon,
            "alt_m": frame.alt_m,
            "heading_deg": frame.heading_deg,
            "speed_mps": frame.speed_mps,
            "fix": frame.fix_type,
            "satellites": frame.satellites,
            "hdop": frame.hdop,
            "camera_id": frame.camera_id,
            "intrinsics_ref": frame.intrinsics_ref,
            "quality": {
                "sharpness": frame.quality_sharpness,
                "exposure": frame.quality_exposure,
                "obstruction": frame.quality_obstruction,
            },
            "privacy": {"faces": frame.faces_blurred, "plates": frame.plates_blurred},
            "image_sha256": frame.image_sha256,
            "jpeg_bytes": frame.image_bytes,
        },
    }


def frame_feature(
    frame: Frame, request: HttpRequest, urls: ImageUrls | None = None
) -> dict[str, Any]:
    urls = urls or ImageUrls(request)
    public = public_sha(frame)
    return {
        "type": "Feature",
        "id": frame.pk,
        "geometry": {"type": "Point", "coordinates": [frame.lon, frame.lat]},
        "properties": {
            "device": frame.device.device_id,
            "seq": frame.seq,
            "captured_at": _iso(frame.captured_at),
            "heading_deg": frame.heading_deg,
            "speed_mps": frame.speed_mps,
            "hdop": frame.hdop,
            "fix_type": frame.fix_type,
            "satellites": frame.satellites,
            "h3_r12": format(frame.h3_r12, "x"),
            "image_sha256": frame.image_sha256,
            "public_image_sha256": public,
            "image_url": urls.url(public),
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
            "provenance": provenance(frame),
        },
    }


def _in_area(query: Any, area: Area) -> Any:
    b = area.bbox
    return query.filter(
        lon__gte=b.min_lon, lon__lte=b.max_lon, lat__gte=b.min_lat, lat__lte=b.max_lat
    )


def _inside_polygon(rows: list[Frame], area: Area) -> list[Frame]:
    if area.polygon is None or not rows:
        return rows
    shapely.prepare(area.polygon)
    points = shapely.points([r.lon for r in rows], [r.lat for r in rows])
    inside = shapely.covers(area.polygon, points)
    return [r for r, ok in zip(rows, inside, strict=True) if ok]


@router.get("/frames", summary="Frames by bbox or polygon, and ISO week")
def frames(
    request: HttpRequest,
    bbox: str | None = None,
    polygon: str | None = None,
    week: str | None = None,
    device: str | None = None,
    limit: str | None = None,
    cursor: str | None = None,
) -> HttpResponse:
    """GeoJSON FeatureCollection of frames, oldest first, `limit` per page (`next` is the
    cursor of the next page). `polygon`: WKT or a GeoJSON geometry. `week`: `2026-W22`."""
    who = reader(request)
    area = parse_area(bbox, polygon)
    assert area is not None
    web = settings.WEB
    size = parse_limit(limit, web.page_size, web.max_page_size)
    query = _in_area(who.frames(Frame.objects.all()), area)
    span = parse_week(week)
    if span is not None:
        query = query.filter(captured_at__gte=span[0], captured_at__lt=span[1])
    if device:
        query = query.filter(device__device_id=device)
    after = _decode_cursor(cursor, ("t", "id"))
    if after is not None:
        at = EPOCH + timedelta(microseconds=after["t"])
        query = query.filter(captured_at__gte=at).exclude(captured_at=at, id__lte=after["id"])
    # a polygon filters after the bbox: read ahead so a page is rarely short
    ahead = size * 4 if area.polygon is not None else size
    batch = list(
        query.select_related("device", "derived_image")
        .defer(*UNSHOWN)
        .order_by("captured_at", "id")[: ahead + 1]
    )
    more = len(batch) > ahead
    rows = _inside_polygon(batch[:ahead], area)
    page = rows[:size]
    next_cursor = None
    if len(rows) > size or more:
        last = page[-1] if len(rows) > size else batch[ahead - 1]
        micros = (last.captured_at - EPOCH) // timedelta(microseconds=1)
        next_cursor = encode_cursor({"t": micros, "id": last.pk})
    count_at(request, *area.bbox.center)
    urls = ImageUrls(request)
    body = {
        "type": "FeatureCollection",
        "features": [frame_feature(f, request, urls) for f in page],
        "next": next_cursor,
        "truncated": next_cursor is not None,
    }
    return JsonResponse(body, content_type="application/geo+json")


@router.get("/frames/{frame_id}", summary="One frame with its provenance")
def frame(request: HttpRequest, frame_id: int) -> HttpResponse:
    object_id(frame_id, "frame")
    row = (
        reader(request)
        .frames(Frame.objects.select_related("device", "derived_image"))
        .filter(pk=frame_id)
    )
    found = row.first()
    if found is None:
        raise ApiError(404, f"no frame {frame_id} that you may read")
    return JsonResponse(frame_feature(found, request), content_type="application/geo+json")


@router.get("/images/{sha256}.jpg", summary="A frame's (blurred) JPEG", response={200: None})
def image(
    request: HttpRequest, sha256: str, expires: int | None = None, sig: str | None = None
) -> HttpResponse:
    """With a signed URL from a frames answer (until it expires), an API key or the
    owner's login."""
    public = False
    if sig is not None and expires is not None:
        if expires < time.time():
            raise ApiError(403, "this image URL expired: ask for the frame again")
        if not hmac.compare_digest(sig, image_signature(sha256, expires)):
            raise ApiError(403, "this image URL's signature is not valid")
        exists = frames_showing(sha256).exists()
        public = True
    else:
        exists = reader(request).frames(frames_showing(sha256)).exists()
    if not exists:
        raise ApiError(404, "no frame you may read has this image")
    try:
        data = shared_store(settings.SERVER).get(sha256)
    except KeyError:
        raise ApiError(404, "image not in store") from None
    except ObjectStoreError:
        logger.exception("the image store failed to read %s", sha256)
        raise ApiError(503, "the image store is unavailable") from None
    response = HttpResponse(data, content_type="image/jpeg")
    response["Cache-Control"] = (
        f"private, max-age={settings.WEB.image_url_seconds}" if public else "private, max-age=60"
    )
    return response


def drives_of(rows: list[tuple[str, datetime, float, float]]) -> list[dict[str, Any]]:
    """(device, captured_at, lon, lat) sorted by device and time -> GeoJSON drives: a new
    drive where the device's frames are more than DRIVE_GAP apart."""
    drives: list[dict[str, Any]] = []
    current: list[tuple[str, datetime, float, float]] = []

    def close() -> None:
        if len(current) >= 1:
            coords = [[lon, lat] for _d, _t, lon, lat in current]
            geometry = (
                {"type": "LineString", "coordinates": coords}
                if len(coords) > 1
                else {"type": "Point", "coordinates": coords[0]}
            )
            drives.append(
                {
                    "type": "Feature",
                    "geometry": geometry,
                    "properties": {
                        "device": current[0][0],
                        "started_at": _iso(current[0][1]),
                        "ended_at": _iso(current[-1][1]),
                        "frames": len(current),
                    },
                }
            )

    for row in rows:
        if current and (row[0] != current[-1][0] or row[1] - current[-1][1] > DRIVE_GAP):
            close()
            current = []
        current.append(row)
    close()
    return drives


@router.get("/drives", summary="Drives (frame tracks) by bbox and ISO week")
def drives(
    request: HttpRequest,
    bbox: str | None = None,
    polygon: str | None = None,
    week: str | None = None,
) -> HttpResponse:
    who = reader(request)
    area = parse_area(bbox, polygon)
    assert area is not None
    query = _in_area(who.frames(Frame.objects.all()), area)
    span = parse_week(week)
    if span is not None:
        query = query.filter(captured_at__gte=span[0], captured_at__lt=span[1])
    rows = list(
        query.order_by("device__device_id", "captured_at").values_list(
            "device__device_id", "captured_at", "lon", "lat"
        )[: MAX_DRIVE_FRAMES + 1]
    )
    body = {
        "type": "FeatureCollection",
        "features": drives_of(rows[:MAX_DRIVE_FRAMES]),
        "truncated": len(rows) > MAX_DRIVE_FRAMES,
    }
    return JsonResponse(body, content_type="application/geo+json")
