"""Which API key a request carries: `Authorization: Bearer rmk_...`, `X-API-Key: rmk_...`,
or `?key=rmk_...` (for GIS clients that cannot set headers). Looked up once per request."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone

from webapp.api.models import ApiKey

_ATTR = "_roadmesh_api_key"


def presented_key(request: HttpRequest) -> str:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    return request.headers.get("X-API-Key", "") or request.GET.get("key", "")


def request_key(request: HttpRequest) -> ApiKey | None:
    """The active key the request presents, or None (none, unknown or revoked)."""
    if hasattr(request, _ATTR):
        return getattr(request, _ATTR)
    raw = presented_key(request)
    key = ApiKey.lookup(raw) if raw else None
    if key is not None and (
        key.last_used_at is None or (timezone.now() - key.last_used_at).total_seconds() > 60
    ):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    setattr(request, _ATTR, key)
    return key
