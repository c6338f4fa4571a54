"""The review queue: the page, the next task, votes and missed boxes. Views parse, call
webapp.review.consensus and answer (JSON errors in the API's one shape)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from webapp.accounts.models import User
from webapp.api.errors import ApiError, error_response
from webapp.api.frames import public_sha, signed_image_url
from webapp.api.jsonbody import parse_object
from webapp.mapping.models import Detection, MapFeature, ReviewTask
from webapp.review import consensus

KNOWN_CLASSES = (
    "stop",
    "yield",
    "no_entry",
    "speed_limit_30",
    "speed_limit_40",
    "speed_limit_50",
    "speed_limit_60",
    "pedestrian_crossing",
    "traffic_light",
    "fire_hydrant",
)


def classes() -> list[str]:
    seen = set(MapFeature.objects.values_list("label", flat=True).distinct())
    return sorted(seen | set(KNOWN_CLASSES))


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if not consensus.may_review(user):
        return render(request, "review/not_reviewer.html", status=403)
    acc = consensus.accuracy(user)
    return render(
        request,
        "review/queue.html",
        {
            "classes": classes(),
            "consensus": settings.WEB.review_consensus,
            "accuracy": acc,
            "open_tasks": ReviewTask.objects.filter(
                state=ReviewTask.State.OPEN, is_gold=False
            ).count(),
        },
    )


def _evidence(task: ReviewTask) -> Detection | None:
    if task.detection is not None:
        return task.detection
    return (
        Detection.objects.filter(feature=task.feature)
        .select_related("frame")
        .order_by("-confidence")
        .first()
    )


def task_json(request: HttpRequest, task: ReviewTask) -> dict[str, Any]:
    d = _evidence(task)
    body: dict[str, Any] = {
        "id": task.pk,
        "feature": {
            "id": task.feature_id,
            "class": task.feature.label,
            "position": [task.feature.lon, task.feature.lat],
        },
        "detection": None,
    }
    if d is not None:
        body["detection"] = {
            "id": d.pk,
            "class": d.label,
            "confidence": round(d.confidence, 3),
            "box": [d.x0, d.y0, d.x1, d.y1],
            "frame": d.frame_id,
            "image_url": signed_image_url(request, public_sha(d.frame)),
            "image_size": [d.frame.image_width, d.frame.image_height],
        }
    return body


def _reviewer(request: HttpRequest) -> User | HttpResponse:
    user = request.user
    if not user.is_authenticated:
        return error_response(401, "sign in first")
    if not consensus.may_review(user):  # type: ignore[arg-type]
        return error_response(403, "only reviewers review")
    return user  # type: ignore[return-value]


@require_GET
def next_task(request: HttpRequest) -> HttpResponse:
    user = _reviewer(request)
    if isinstance(user, HttpResponse):
        return user
    task = consensus.next_task(user, settings.WEB.review_gold_every)
    remaining = (
        ReviewTask.objects.filter(state=ReviewTask.State.OPEN, is_gold=False)
        .exclude(votes__reviewer=user)
        .count()
    )
    return JsonResponse(
        {"task": task_json(request, task) if task else None, "remaining": remaining}
    )


def _body(request: HttpRequest) -> dict[str, Any] | HttpResponse:
    try:
        return parse_object(request.body, settings.WEB.max_body_depth)
    except ApiError as exc:
        return error_response(exc.status, exc.message)


@require_POST
def vote(request: HttpRequest, task_id: int) -> HttpResponse:
    user = _reviewer(request)
    if isinstance(user, HttpResponse):
        return user
    data = _body(request)
    if isinstance(data, HttpResponse):
        return data
    try:
        result = consensus.cast_vote(
            user,
            task_id,
            str(data.get("verdict", "")),
            str(data.get("label", "") or ""),
            settings.WEB.review_consensus,
        )
    except consensus.ReviewError as exc:
        return error_response(exc.status, str(exc))
    return JsonResponse({"vote": result.vote.pk, "settled": result.settled}, status=201)


@require_POST
def missed(request: HttpRequest, frame_id: int) -> HttpResponse:
    user = _reviewer(request)
    if isinstance(user, HttpResponse):
        return user
    data = _body(request)
    if isinstance(data, HttpResponse):
        return data
    box = data.get("box")
    if not (
        isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box)
    ):
        return error_response(400, "box must be [x0, y0, x1, y1] in image pixels")
    try:
        row = consensus.mark_missed(user, frame_id, str(data.get("label", "")), tuple(box))  # type: ignore[arg-type]
    except consensus.ReviewError as exc:
        return error_response(exc.status, str(exc))
    return JsonResponse({"missed": row.pk}, status=201)
