"""Throttles in front of every view: per-client request rates, a per-key daily quota, a
stricter rate on logins and device registration, a tile budget of its own, and a
per-process cap on concurrent expensive requests, so a burst of heavy queries cannot take every server thread
(`/healthz` and static files stay fast). A refusal is a 429 with `Retry-After`, in the
API's one error shape.

Counters live in Django's cache (the default is per process; ROADMESH_CACHE=database
shares them between processes). Failed passwords are counted apart, by django-axes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from webapp.api.errors import error_response
from webapp.api.keys import request_key
from webapp.websettings import Rate, WebSettings

LOGIN_PATHS = ("/admin/login/", "/accounts/login/", "/accounts/signup/", "/api/v1/devices")
THROTTLED_PREFIXES = ("/api/", "/tiles/", "/ogc/", "/downloads/")
UNTHROTTLED = ("/healthz", "/api/v1/schema", "/api/v1/docs")
EXPENSIVE_PREFIXES = (
    "/api/v1/features",
    "/api/v1/frames",
    "/api/v1/coverage",
    "/api/v1/changes",
    "/ogc/collections/",
    "/downloads/",
)


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, or the address the last proxy saw (ROADMESH_TRUST_X_FORWARDED_FOR)."""
    web: WebSettings = settings.WEB
    if web.trust_x_forwarded_for:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return str(request.META.get("REMOTE_ADDR", ""))


def hit(key: str, rate: Rate) -> float | None:
    """Count one request against `rate` (a fixed window); None when allowed, else the
    seconds until the window ends."""
    now = time.time()
    window = int(now // rate.seconds)
    name = f"rm-rate:{key}:{rate.seconds}:{window}"
    if cache.add(name, 1, timeout=rate.seconds + 1):
        count = 1
    else:
        try:
            count = cache.incr(name)
        except ValueError:  # expired between add and incr
            cache.add(name, 1, timeout=rate.seconds + 1)
            count = 1
    if count > rate.count:
        return (window + 1) * rate.seconds - now
    return None


def _seconds_to_midnight() -> float:
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return (midnight - now).total_seconds()


def too_many(wait: float, what: str) -> HttpResponse:
    seconds = max(1, math.ceil(wait))
    return error_response(
        429, f"{what}: retry in {seconds} s", headers={"Retry-After": str(seconds)}
    )


class Gate:
    """At most `n` requests at once in this process; the next one is refused at once."""

    def __init__(self, n: int):
        self._slots = threading.BoundedSemaphore(n)

    def try_enter(self) -> bool:
        return self._slots.acquire(blocking=False)

    def leave(self) -> None:
        self._slots.release()


class ThrottleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.gate = Gate(settings.WEB.expensive_concurrency)

    @property
    def web(self) -> WebSettings:
        return settings.WEB  # type: ignore[no-any-return]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path.startswith(UNTHROTTLED):
            return self.get_response(request)
        ip = client_ip(request)
        if request.method == "POST" and path.startswith(LOGIN_PATHS):
            wait = hit(f"login:{ip}", self.web.login_rate)
            if wait is not None:
                return too_many(wait, "too many sign-in attempts from this address")
        if path.startswith(THROTTLED_PREFIXES):
            refused = self._rate(request, ip)
            if refused is not None:
                return refused
        if not path.startswith(EXPENSIVE_PREFIXES):
            return self.get_response(request)
        if not self.gate.try_enter():
            return too_many(1, "the server is busy with other heavy requests")
        try:
            return self.get_response(request)
        finally:
            self.gate.leave()

    def _rate(self, request: HttpRequest, ip: str) -> HttpResponse | None:
        if request.path.startswith("/tiles/"):
            # a map view pulls dozens of tiles at once: a budget of their own, per address;
            # building one (a cache miss) is bounded in webapp.tiles
            wait = hit(f"tiles:{ip}", self.web.tile_rate)
            return None if wait is None else too_many(wait, "rate limit for tiles")
        key = request_key(request)
        if key is None:
            wait = hit(f"ip:{ip}", self.web.anon_rate)
            return None if wait is None else too_many(wait, "rate limit for anonymous requests")
        rate = Rate(key.rate_per_minute, 60) if key.rate_per_minute else self.web.key_rate
        wait = hit(f"key:{key.key_id}", rate)
        if wait is not None:
            return too_many(wait, "rate limit of this API key")
        quota = key.daily_quota or self.web.daily_quota
        day = Rate(quota, 86400)
        if hit(f"quota:{key.key_id}:{datetime.now(UTC).date()}", day) is not None:
            return too_many(_seconds_to_midnight(), "daily quota of this API key is used up")
        return None
