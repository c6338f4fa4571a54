"""HTML pages (server-rendered): the map and the contributor dashboard. Views only look up
and render; the data comes from the API and webapp.dashboard."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Max, Min
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from webapp import dashboard as board
from webapp.accounts.models import User
from webapp.api.access import reader
from webapp.fleet.models import Device, Frame, RejectedMessage
from webapp.mapping.models import MapFeature
from webapp.review.views import classes


def _extent() -> list[float] | None:
    for query, lon, lat in (
        (MapFeature.objects.all(), "lon", "lat"),
        (Frame.objects.all(), "lon", "lat"),
    ):
        agg = query.aggregate(a=Min(lon), b=Min(lat), c=Max(lon), d=Max(lat))
        if agg["a"] is not None:
            return [round(agg[k], 6) for k in "abcd"]
    return None


def index(request: HttpRequest) -> HttpResponse:
    context = {
        "n_devices": Device.objects.count(),
        "n_frames": Frame.objects.count(),
        "n_features": MapFeature.objects.count(),
        "n_rejected": RejectedMessage.objects.count(),
        "config": {
            "extent": _extent(),
            "classes": classes(),
            "states": list(MapFeature.Status.values),
            "styleUrl": settings.WEB.style_url,
            "framesVisible": reader(request).user is not None,
        },
    }
    return render(request, "index.html", context)


LICENCES = {"maplibre-gl": settings.REPO_DIR / "node_modules" / "maplibre-gl" / "LICENSE.txt"}


def licence(request: HttpRequest, name: str) -> HttpResponse:
    """The licence of a front-end package we serve (MapLibre GL JS: BSD-3-Clause)."""
    path = LICENCES.get(name)
    if path is None or not path.is_file():
        raise Http404(f"no licence of {name}")
    return HttpResponse(path.read_text(), content_type="text/plain; charset=utf-8")


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    context = {
        "devices": board.devices(user),
        "refused": board.refused(user),
        "epoch": board.this_epoch(user),
        "earnings": board.earnings(user),
        "wallet": user.wallet_address,
        "config": {"extent": board.frames_extent(user)},
    }
    return render(request, "dashboard.html", context)
