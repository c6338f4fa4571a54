"""The generic job table: one row per (kind, key), leased by workers.

A job names work to do, not a copy of its inputs: `image_check` for device `dev-1` means
"check the frames of dev-1 that are still pending". A row is never duplicated: work that
arrives while the job is leased sets `requeue`, and completing it then puts it back to
pending instead of done (webapp.jobs.queue).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Job(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        LEASED = "leased"
        DONE = "done"
        FAILED = "failed"  # gave up after its attempts; enqueueing it again revives it

    kind = models.CharField(max_length=32)
    key = models.CharField(max_length=128)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    requeue = models.BooleanField(default=False)  # more work arrived while it was leased
    run_after = models.DateTimeField(default=timezone.now)
    leased_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=128, blank=True, default="")
    lease_token = models.CharField(max_length=32, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "key"], name="job_kind_key_unique")]
        indexes = [models.Index(fields=["kind", "state", "run_after"], name="job_due")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} ({self.state})"
