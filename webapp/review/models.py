"""What reviewers add beside their votes (webapp.mapping.models.Vote): boxes the detector missed."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.fleet.models import Frame


class MissedBox(models.Model):
    """An object a reviewer boxed by hand in a frame (pixels of the stored image)."""

    frame = models.ForeignKey(Frame, on_delete=models.CASCADE, related_name="missed_boxes")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="missed_boxes"
    )
    label = models.CharField(max_length=48)
    x0 = models.FloatField()
    y0 = models.FloatField()
    x1 = models.FloatField()
    y1 = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"missed {self.label} in {self.frame_id} by {self.reviewer_id}"
