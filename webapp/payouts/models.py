"""Reward epochs and per-account allocations (first versions; the Merkle root goes on chain)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Epoch(models.Model):
    class State(models.TextChoices):
        OPEN = "open"
        SCORED = "scored"
        PUBLISHED = "published"

    number = models.PositiveIntegerField(unique=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    merkle_root = models.CharField(max_length=66, blank=True, default="")
    publish_tx = models.CharField(max_length=66, blank=True, default="")

    def __str__(self) -> str:
        return f"epoch {self.number} ({self.state})"


class Allocation(models.Model):
    epoch = models.ForeignKey(Epoch, on_delete=models.PROTECT, related_name="allocations")
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="allocations"
    )
    wallet_address = models.CharField(max_length=42)
    # token base units (18 decimals) as a decimal string-safe integer
    amount = models.DecimalField(max_digits=78, decimal_places=0)
    cumulative_amount = models.DecimalField(max_digits=78, decimal_places=0)
    breakdown = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["epoch", "account"], name="allocation_once_per_epoch")
        ]

    def __str__(self) -> str:
        return f"{self.account_id} in {self.epoch_id}: {self.amount}"
