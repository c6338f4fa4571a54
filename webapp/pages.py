"""HTML pages (server-rendered). Views only look up and render."""

from __future__ import annotations

import json

from django.db.models import Max, Min
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.fleet.models import Device, Frame, RejectedMessage


def index(request: HttpRequest) -> HttpResponse:
    extent = Frame.objects.aggregate(
        min_lon=Min("lon"), min_lat=Min("lat"), max_lon=Max("lon"), max_lat=Max("lat")
    )
    bbox = None
    values: list[float] | None = None
    if extent["min_lon"] is not None:
        values = [round(extent[k], 6) for k in ("min_lon", "min_lat", "max_lon", "max_lat")]
        bbox = ",".join(f"{v:.6f}" for v in values)
    context = {
        "n_devices": Device.objects.count(),
        "n_frames": Frame.objects.count(),
        "n_rejected": RejectedMessage.objects.count(),
        "bbox": bbox,
        "bbox_json": json.dumps(values),
    }
    return render(request, "index.html", context)
