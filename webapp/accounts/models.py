"""People: drivers, reviewers, consumers and operators, each with an optional wallet."""

from __future__ import annotations

import re

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models

_WALLET_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")


def validate_wallet(value: str) -> None:
    if value and not _WALLET_RE.match(value):
        raise ValidationError(f"{value!r} is not a 0x-prefixed 20-byte hex address")


class User(AbstractUser):
    class Role(models.TextChoices):
        DRIVER = "driver"
        REVIEWER = "reviewer"
        CONSUMER = "consumer"
        OPERATOR = "operator"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.DRIVER)
    wallet_address = models.CharField(
        max_length=42, blank=True, default="", validators=[validate_wallet]
    )

    def __str__(self) -> str:
        return f"{self.username} ({self.role})"
