"""The consumer API v1 (django-ninja): routes, the OpenAPI schema at /api/v1/schema, the
interactive docs at /api/v1/docs (Swagger UI served from the ninja package: no CDN),
and the one error shape for everything it answers."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

import protocol
from webapp import serverkey
from webapp.api import devices, features, frames
from webapp.api.access import signed_in
from webapp.api.errors import ApiError, error_response
from webapp.api.jsonbody import parse_object
from webapp.fleet.models import Device, Frame, RejectedMessage


class BoundedJsonParser(Parser):
    """JSON bodies, refused with 400 when not a JSON object or nested past
    ROADMESH_API_MAX_JSON_DEPTH (checked before parsing: webapp.api.jsonbody)."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return parse_object(request.body, settings.WEB.max_body_depth)


api = NinjaAPI(
    title="RoadMesh API",
    version="1",
    description=(
        "Map features, coverage, frames (with provenance), drives, tiles and a change feed."
        " Anonymous readers get features and coverage; frames and drives need an API key"
        " (`Authorization: Bearer rmk_...`) or the owner's login. Errors are"
        ' `{"error": "..."}`; throttled requests get 429 with Retry-After.'
    ),
    openapi_url="/schema",
    docs_url="/docs",
    parser=BoundedJsonParser(),
    urls_namespace="api-v1",
)


@api.exception_handler(ApiError)
def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(exc.status, exc.message, exc.headers)


@api.exception_handler(ValidationError)
def _validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    parts = []
    for err in exc.errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return error_response(400, "; ".join(parts) or "invalid request")


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(401, "authentication required")


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error_response(exc.status_code, str(exc))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(404, "not found")


api.add_router("/", frames.router)
api.add_router("/", features.router)
api.add_router("/", devices.router)


@api.get("/stats", tags=["server"], summary="Counts of devices, frames, features and rejections")
def stats(request: HttpRequest) -> dict[str, Any]:
    rejected = dict(RejectedMessage.objects.values_list("reason").annotate(n=Count("id")))
    return {
        "devices": Device.objects.count(),
        "frames": Frame.objects.count(),
        "frames_flagged": Frame.objects.filter(state=Frame.State.FLAGGED).count(),
        "frames_pending": Frame.objects.filter(state=Frame.State.PENDING).count(),
        "features": features.class_counts(),
        "rejected": rejected,
    }


@api.get("/server-key", tags=["server"], summary="The key that signs receipts")
def server_key(request: HttpRequest) -> dict[str, str]:
    """docs/protocol.md: devices check their receipts with it."""
    key = serverkey.server_key(settings.SERVER.server_key_file)
    raw = protocol.public_key_bytes(key)
    return {
        "algorithm": "ed25519",
        "public_key": raw.hex(),
        "key_id": protocol.key_id(raw).hex(),
        "fingerprint": protocol.fingerprint(key),
    }


@api.get("/me/keys", tags=["keys"], summary="The signed-in consumer's API keys")
def my_keys(request: HttpRequest) -> dict[str, Any]:
    """Create and revoke keys on /account/keys (the secret is shown once there)."""
    user = signed_in(request)
    return {
        "keys": [
            {
                "key_id": k.key_id,
                "name": k.name,
                "created_at": k.created_at.isoformat(),
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                "revoked": k.revoked_at is not None,
            }
            for k in user.api_keys.order_by("created_at")
        ]
    }


def health(request: HttpRequest) -> HttpResponse:
    """GET /healthz (outside the API and its throttles)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse(
        json.dumps({"status": "ok", "database": connection.vendor}),
        content_type="application/json",
    )
