"""The one JSON error shape of the web API: `{"error": "<what went wrong>"}` with the HTTP status.

Every API answer that is not a success has this body: the views' own refusals, validation
errors, throttles (429 with Retry-After), missing routes and server errors under /api/,
/tiles/ and /ogc/.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

API_PREFIXES = ("/api/", "/tiles/", "/ogc/")


class ApiError(Exception):
    """Raised by API code to answer `status` with `message` (and headers)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(404, f"nothing at {request.path}")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(500, "internal server error")
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(400, "bad request")
    return defaults.bad_request(request, exception)


def forbidden(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(403, "forbidden")
    return defaults.permission_denied(request, exception)


class JsonErrorMiddleware:
    """Under the API prefixes, an error answer that is not JSON (a 405 from the router,
    a 413 from the request parser ...) becomes the one error shape, headers kept."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and is_api_path(request.path)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            reason = response.reason_phrase.lower() if response.reason_phrase else "error"
            shaped = error_response(
                response.status_code, f"{reason}: {request.method} {request.path}"
            )
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if header in response:
                    shaped[header] = response[header]
            return shaped
        return response
