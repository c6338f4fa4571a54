"""What vision found and what the map says: detections, map features, review, and the
privacy re-check's derived images.

The vision job (`webapp.mapping.vision_job`) writes Detection rows (boxes, scores, the
model's version and SHA-256, bearing and range from the camera model), a DerivedImage for
each frame in which it found a face or plate the device left unblurred, and the per-device
PrivacyTally. The mapper (`webapp.mapping.mapper_job`) writes MapFeature rows.
"""

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
    model_sha256 = models.CharField(max_length=64, blank=True, default="", db_index=True)
    # camera model (vision.mapper.locate): compass bearing of the box centre and the range
    # from the class's physical size; None when the class has no known size
    bearing_deg = models.FloatField(null=True, blank=True)
    range_m = models.FloatField(null=True, blank=True)

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
    # 1-sigma uncertainty ellipse (uncertainty_m is its semi-major axis)
    ellipse_major_m = models.FloatField(null=True, blank=True)
    ellipse_minor_m = models.FloatField(null=True, blank=True)
    ellipse_bearing_deg = models.FloatField(null=True, blank=True)  # of the major axis, 0..180
    n_observations = models.PositiveIntegerField(default=0)
    # passes since the last sighting that drove by in clear view and did not see it
    missed_passes = models.PositiveIntegerField(default=0)
    score = models.FloatField(default=0.0)  # mean detector score of its passes
    # who set the status: the mapper (from passes) or a review decision (which the mapper keeps)
    status_by = models.CharField(max_length=16, blank=True, default="mapper")
    updated_at = models.DateTimeField(auto_now=True)

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


class DerivedImage(models.Model):
    """A frame with the faces and plates its device missed blurred by the server.

    The API serves this image in place of the original (`public_image_sha256`); the signed
    original stays in the store for audit. `boxes` and `model_version` record the
    derivation, so a consumer can check provenance against the original's hash."""

    frame = models.OneToOneField(Frame, on_delete=models.CASCADE, related_name="derived_image")
    image_sha256 = models.CharField(max_length=64, db_index=True)
    source_sha256 = models.CharField(max_length=64)
    model_version = models.CharField(max_length=64)
    faces = models.PositiveIntegerField(default=0)
    plates = models.PositiveIntegerField(default=0)
    boxes = models.JSONField(default=list)  # [{"label", "score", "box": [x0, y0, x1, y1]}]
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"derived {self.image_sha256[:12]} of {self.source_sha256[:12]}"


class PrivacyTally(models.Model):
    """Per device: frames the server re-checked, and the faces and plates it had to blur."""

    device = models.OneToOneField(
        "fleet.Device", on_delete=models.CASCADE, related_name="privacy_tally"
    )
    frames_checked = models.PositiveIntegerField(default=0)
    frames_with_misses = models.PositiveIntegerField(default=0)
    faces_missed = models.PositiveIntegerField(default=0)
    plates_missed = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    @property
    def miss_rate(self) -> float:
        return self.frames_with_misses / self.frames_checked if self.frames_checked else 0.0

    def __str__(self) -> str:
        return f"{self.device_id}: {self.frames_with_misses}/{self.frames_checked} frames missed"


def public_image_sha256(frame: Frame) -> str:
    """The image the public may see of `frame`: the derived one where the server blurred
    more, else the device's original."""
    derived = DerivedImage.objects.filter(frame=frame).values_list("image_sha256", flat=True)
    return next(iter(derived), frame.image_sha256)
