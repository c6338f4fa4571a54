"""Reward epochs, what each wallet was allocated (with its proof), and when each H3 cell was
last covered (the freshness history). Written only by `webapp.payouts.epochs`."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Epoch(models.Model):
    class State(models.TextChoices):
        SCORED = "scored"  # allocations stored, frames counted; root not on chain yet
        PUBLISHED = "published"  # root proposed on chain (active after the distributor's delay)
        EMPTY = "empty"  # nothing to allocate: no root

    number = models.PositiveIntegerField(unique=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.SCORED)
    params = models.JSONField(default=dict, blank=True)
    frames = models.PositiveIntegerField(default=0)
    inputs_sha256 = models.CharField(max_length=64, blank=True, default="")
    inputs_file = models.CharField(max_length=500, blank=True, default="")
    claims_file = models.CharField(max_length=500, blank=True, default="")
    inputs_uri = models.CharField(max_length=500, blank=True, default="")
    merkle_root = models.CharField(max_length=66, blank=True, default="")
    new_amount = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    withheld_amount = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    chain_id = models.BigIntegerField(null=True, blank=True)
    distributor = models.CharField(max_length=42, blank=True, default="")
    publish_tx = models.CharField(max_length=66, blank=True, default="")
    closed_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"epoch {self.number} ({self.state})"


class Allocation(models.Model):
    """One wallet's leaf in an epoch's tree: its new and cumulative amounts and its proof.
    Wallets allocated in earlier epochs carry over with `amount` 0."""

    epoch = models.ForeignKey(Epoch, on_delete=models.PROTECT, related_name="allocations")
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="allocations",
    )
    wallet_address = models.CharField(max_length=42)  # lower case
    # token base units (18 decimals)
    amount = models.DecimalField(max_digits=78, decimal_places=0)
    coverage_amount = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    review_amount = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    cumulative_amount = models.DecimalField(max_digits=78, decimal_places=0)
    proof = models.JSONField(default=list, blank=True)  # 0x-hex sibling hashes, leaf to root
    breakdown = models.JSONField(default=dict, blank=True)  # rewards.epoch.explain

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["epoch", "wallet_address"], name="allocation_once_per_wallet"
            )
        ]

    def __str__(self) -> str:
        return f"{self.wallet_address} in {self.epoch_id}: {self.amount}"


class CellCoverage(models.Model):
    """When rewarded frames last covered an H3 res-12 cell (updated as epochs close)."""

    h3_r12 = models.BigIntegerField(unique=True)
    last_covered_at = models.DateTimeField()
    epoch = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.h3_r12:x} last covered {self.last_covered_at:%Y-%m-%d}"
