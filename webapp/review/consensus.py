"""The review queue's rules: which task a reviewer sees next, what a vote does, when a task
settles, and what a settled task does to its map feature.

- An answer is "accept", "reject" or, for a relabel, the new class (the same space as the
  rewards' votes table and `ReviewTask.gold_label` / `decided_label`).
- A reviewer's accuracy comes from their answers to gold tasks (known answers, mixed in
  unannounced, about one in ROADMESH_REVIEW_GOLD_EVERY): (correct + PRIOR x PRIOR_WEIGHT)
  / (answered + PRIOR_WEIGHT). It weights their votes; below MIN_ACCURACY a vote weighs 0.
- A task settles on answer A once at least `consensus` votes (ROADMESH_REVIEW_CONSENSUS,
  default 3) chose A and A holds more than half the weight of all the task's votes.
  Gold tasks never settle.
- Settled: accept confirms the feature, reject rejects it, a relabel renames it and
  confirms it. The feature's save records the change in the change feed.
- A reviewer never reviews detections from their own devices.

Each change runs in one transaction with the task row locked.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from webapp.accounts.models import User
from webapp.fleet.models import Frame
from webapp.mapping.models import MapFeature, ReviewTask, Vote
from webapp.review.models import MissedBox

PRIOR = 0.8
PRIOR_WEIGHT = 4.0
MIN_ACCURACY = 0.5
ACCEPT = "accept"
REJECT = "reject"


class ReviewError(Exception):
    """A vote the rules refuse; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def answer_of(vote: Vote) -> str:
    return vote.label if vote.verdict == Vote.Verdict.RELABEL else vote.verdict


@dataclass(frozen=True)
class Accuracy:
    answered: int
    correct: int

    @property
    def value(self) -> float:
        return (self.correct + PRIOR * PRIOR_WEIGHT) / (self.answered + PRIOR_WEIGHT)

    @property
    def weight(self) -> float:
        return self.value if self.value >= MIN_ACCURACY else 0.0


def accuracies(reviewer_ids: list[int]) -> dict[int, Accuracy]:
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    votes = Vote.objects.filter(reviewer_id__in=reviewer_ids, task__is_gold=True).select_related(
        "task"
    )
    for v in votes:
        counts[v.reviewer_id][0] += 1
        counts[v.reviewer_id][1] += int(answer_of(v) == v.task.gold_label)
    return {r: Accuracy(*counts[r]) for r in reviewer_ids}


def accuracy(reviewer: User) -> Accuracy:
    return accuracies([reviewer.pk])[reviewer.pk]


def settled_answer(votes: list[Vote], consensus: float) -> str | None:
    """The answer these votes settle on, or None."""
    weights = accuracies(sorted({v.reviewer_id for v in votes}))
    count: dict[str, int] = defaultdict(int)
    weight: dict[str, float] = defaultdict(float)
    for v in votes:
        a = answer_of(v)
        count[a] += 1
        weight[a] += weights[v.reviewer_id].weight
    total = sum(weight.values())
    for a in sorted(count, key=lambda k: (-weight[k], k)):
        if count[a] >= consensus and total > 0 and weight[a] > total / 2:
            return a
    return None


def may_review(user: User) -> bool:
    return user.is_active and (
        user.role in (User.Role.REVIEWER, User.Role.OPERATOR)
        or user.is_staff
        or user.groups.filter(name="reviewers").exists()
    )


def _open_for(reviewer: User) -> QuerySet[ReviewTask]:
    return (
        ReviewTask.objects.filter(state=ReviewTask.State.OPEN)
        .exclude(votes__reviewer=reviewer)
        .exclude(detection__frame__device__owner=reviewer)
        .exclude(Q(detection__isnull=True) & Q(feature__detections__isnull=True))
        .distinct()
    )


def next_task(reviewer: User, gold_every: int) -> ReviewTask | None:
    """The task to show `reviewer` next: the oldest open one they have not answered, or
    (about one time in `gold_every`) a gold task."""
    answered = Vote.objects.filter(reviewer=reviewer).count()
    candidates = _open_for(reviewer)
    if gold_every and (answered + 1) % gold_every == 0:
        gold = candidates.filter(is_gold=True).order_by("id").first()
        if gold is not None:
            return gold
    task = candidates.filter(is_gold=False).order_by("created_at", "id").first()
    return task or candidates.filter(is_gold=True).order_by("id").first()


@dataclass(frozen=True)
class VoteResult:
    vote: Vote
    settled: str | None  # the answer the task settled on with this vote, or None


def cast_vote(
    reviewer: User, task_id: int, verdict: str, label: str, consensus: float
) -> VoteResult:
    if not may_review(reviewer):
        raise ReviewError("only reviewers vote", status=403)
    if verdict not in Vote.Verdict.values:
        raise ReviewError(f"verdict must be one of {', '.join(Vote.Verdict.values)}")
    label = label.strip()
    if verdict == Vote.Verdict.RELABEL and not label:
        raise ReviewError("a relabel needs the new class")
    if verdict != Vote.Verdict.RELABEL:
        label = ""
    with transaction.atomic():
        task = (
            ReviewTask.objects.select_for_update(of=("self",))
            .select_related("feature", "detection__frame__device")
            .filter(pk=task_id)
            .first()
        )
        if task is None:
            raise ReviewError(f"no task {task_id}", status=404)
        if task.state != ReviewTask.State.OPEN:
            raise ReviewError("this task is already settled", status=409)
        if task.detection is not None and task.detection.frame.device.owner_id == reviewer.pk:
            raise ReviewError("you cannot review your own devices' detections", status=403)
        if verdict == Vote.Verdict.RELABEL and label == (
            task.detection.label if task.detection else task.feature.label
        ):
            verdict, label = Vote.Verdict.ACCEPT, ""
        try:
            with transaction.atomic():
                vote = Vote.objects.create(
                    task=task, reviewer=reviewer, verdict=verdict, label=label
                )
        except IntegrityError:
            raise ReviewError("you already answered this task", status=409) from None
        if task.is_gold:
            return VoteResult(vote, None)
        answer = settled_answer(list(task.votes.all()), consensus)
        if answer is not None:
            settle(task, answer)
    return VoteResult(vote, answer)


def settle(task: ReviewTask, answer: str) -> None:
    """Decide the task (inside the caller's transaction) and move its feature."""
    task.state = ReviewTask.State.DECIDED
    task.decided_label = answer
    task.save(update_fields=["state", "decided_label"])
    feature = MapFeature.objects.select_for_update().get(pk=task.feature_id)
    if answer == REJECT:
        feature.status = MapFeature.Status.REJECTED
    else:
        if answer != ACCEPT:
            feature.label = answer
        feature.status = MapFeature.Status.CONFIRMED
    feature.status_by = "review"  # the mapper keeps a review's decision
    feature.save()


def mark_missed(
    reviewer: User, frame_id: int, label: str, box: tuple[float, float, float, float]
) -> MissedBox:
    """Record an object the detector missed, boxed by a reviewer in a frame's image."""
    if not may_review(reviewer):
        raise ReviewError("only reviewers mark missed objects", status=403)
    label = label.strip()
    if not label or len(label) > 48:
        raise ReviewError("label must be a class name of 1-48 characters")
    frame = Frame.objects.filter(pk=frame_id).first()
    if frame is None:
        raise ReviewError(f"no frame {frame_id}", status=404)
    x0, y0, x1, y1 = (float(v) for v in box)
    width, height = frame.image_width or 1e9, frame.image_height or 1e9
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ReviewError("box must be x0 < x1, y0 < y1 inside the image")
    if (x1 - x0) < 2 or (y1 - y0) < 2:
        raise ReviewError("box is too small")
    return MissedBox.objects.create(
        frame=frame, reviewer=reviewer, label=label, x0=x0, y0=y0, x1=x1, y1=y1
    )
