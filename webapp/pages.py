"""HTML pages (server-rendered). Views only look up and render."""

from __future__ import annotations

from django.db.models import Max, Min
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.fleet.models import Device, Frame, RejectedMessage


def index(request: HttpRequest) -> HttpResponse:
    extent = Frame.objects.aggregate(
        min_lon=Min("lon"), min_lat=Min("lat"), max_lon=Max("lon"), max_lat=Max("lat")
    )
    bbox = None
    if extent["min_lon"] is not None:
        bbox = ",".join(f"{extent[k]:.6f}" for k in ("min_lon", "min_lat", "max_lon", "max_lat"))
    context = {
        "n_devices": Device.objects.count(),
        "n_frames": Frame.objects.count(),
        "n_rejected": RejectedMessage.objects.count(),
        "bbox": bbox,
    }
    return render(request, "index.html", context)
