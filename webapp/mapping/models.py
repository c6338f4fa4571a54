"""What vision found and what the map says: detections, map features, review (first versions)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.fleet.models import Frame


class Detection(models.Model):
    frame = models.ForeignKey(Frame, on_delete=models.CASCADE, related_name="detections")
    label = models.CharField(max_length=48, db_index=True)
    confidence = models.FloatField()
    # box in pixels of the stored image: x0, y0, x1, y1
    x0 = models.FloatField()
    y0 = models.FloatField()
    x1 = models.FloatField()
    y1 = models.FloatField()
    model_version = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    feature = models.ForeignKey(
        "MapFeature", null=True, blank=True, on_delete=models.SET_NULL, related_name="detections"
    )

    def __str__(self) -> str:
        return f"{self.label} {self.confidence:.2f} in {self.frame_id}"


class MapFeature(models.Model):
    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        CONFIRMED = "confirmed"
        REJECTED = "rejected"
        REMOVED = "removed"

    label = models.CharField(max_length=48, db_index=True)
    lat = models.FloatField()
    lon = models.FloatField()
    uncertainty_m = models.FloatField()
    facing_deg = models.FloatField(null=True, blank=True)
    h3_r12 = models.BigIntegerField(db_index=True)
    n_passes = models.PositiveIntegerField(default=0)
    n_devices = models.PositiveIntegerField(default=0)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.CANDIDATE, db_index=True
    )

    def __str__(self) -> str:
        return f"{self.label} @ {self.lat:.6f},{self.lon:.6f} ({self.status})"


class ReviewTask(models.Model):
    class State(models.TextChoices):
        OPEN = "open"
        DECIDED = "decided"

    feature = models.ForeignKey(MapFeature, on_delete=models.CASCADE, related_name="review_tasks")
    detection = models.ForeignKey(Detection, null=True, blank=True, on_delete=models.SET_NULL)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.OPEN, db_index=True
    )
    is_gold = models.BooleanField(default=False)
    gold_label = models.CharField(max_length=48, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_label = models.CharField(max_length=48, blank=True, default="")

    def __str__(self) -> str:
        return f"review {self.pk} of {self.feature_id} ({self.state})"


class Vote(models.Model):
    class Verdict(models.TextChoices):
        ACCEPT = "accept"
        REJECT = "reject"
        RELABEL = "relabel"

    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="votes")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="votes"
    )
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    label = models.CharField(max_length=48, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "reviewer"], name="vote_once_per_task")
        ]

    def __str__(self) -> str:
        return f"{self.verdict} by {self.reviewer_id} on {self.task_id}"
