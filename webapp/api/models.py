"""Consumers' API keys and their usage per H3 cell; registered device keys and the server
challenges a device signs to prove it holds its key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

KEY_PREFIX = "rmk_"


def _digest(raw: str) -> str:
    # API keys are 32 random bytes: a fast hash is enough (nothing to brute-force).
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    """A consumer's key: `rmk_<id>_<secret>`. Only its SHA-256 is stored; shown once."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100, blank=True, default="")
    key_id = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    rate_per_minute = models.PositiveIntegerField(null=True, blank=True)  # None: the default
    daily_quota = models.PositiveIntegerField(null=True, blank=True)  # None: the default
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{KEY_PREFIX}{self.key_id}… of {self.owner_id}"

    @classmethod
    def issue(cls, owner: models.Model, name: str = "") -> tuple[ApiKey, str]:
        """A new key of `owner` and its secret text (shown once)."""
        key_id = secrets.token_hex(6)
        raw = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = cls.objects.create(owner=owner, name=name, key_id=key_id, digest=_digest(raw))
        return key, raw

    @classmethod
    def lookup(cls, raw: str) -> ApiKey | None:
        """The active key of this text, or None."""
        if not raw.startswith(KEY_PREFIX) or len(raw) > 100:
            return None
        key_id, _, secret = raw[len(KEY_PREFIX) :].partition("_")
        if not secret:
            return None
        key = (
            cls.objects.select_related("owner")
            .filter(key_id=key_id, revoked_at__isnull=True)
            .first()
        )
        if key is None or not hmac.compare_digest(key.digest, _digest(raw)):
            return None
        if not key.owner.is_active:
            return None
        return key

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


class ApiUsage(models.Model):
    """Requests per consumer ("" = anonymous), UTC day and H3 res-9 cell: the demand the
    rewards weigh coverage by."""

    consumer = models.CharField(max_length=16, blank=True, default="")  # ApiKey.key_id
    day = models.DateField()
    h3_r9 = models.BigIntegerField()
    requests = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["consumer", "day", "h3_r9"], name="usage_once_per_cell")
        ]
        indexes = [models.Index(fields=["day"], name="usage_day")]

    def __str__(self) -> str:
        return f"{self.consumer or 'anonymous'} {self.day} {self.h3_r9:x}: {self.requests}"


class DeviceKey(models.Model):
    """Every public key registered through the API, once: no two devices share a key."""

    device = models.OneToOneField(
        "fleet.Device", on_delete=models.CASCADE, related_name="registered_key"
    )
    public_key_hex = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return f"{self.public_key_hex[:16]}… of {self.device_id}"


class RegistrationChallenge(models.Model):
    """A one-time nonce the server gave `owner`; the device signs it with the key it registers."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="device_challenges"
    )
    nonce = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"challenge {self.nonce[:8]}… for {self.owner_id}"

    @classmethod
    def issue(cls, owner: models.Model, seconds: int) -> RegistrationChallenge:
        now = timezone.now()
        cls.objects.filter(owner=owner, expires_at__lt=now).delete()
        return cls.objects.create(
            owner=owner, nonce=secrets.token_hex(32), expires_at=now + timedelta(seconds=seconds)
        )


def today() -> date:
    return timezone.now().date()


class FeatureEvent(models.Model):
    """The change feed: a map feature was added, moved, changed or removed. Append-only;
    the id is the feed's cursor. Written by `webapp.api.changes` (signals on MapFeature,
    and `record` for bulk writers)."""

    class Kind(models.TextChoices):
        ADDED = "added"
        MOVED = "moved"
        CHANGED = "changed"  # class or state
        REMOVED = "removed"

    feature = models.ForeignKey(
        "mapping.MapFeature", on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    label = models.CharField(max_length=48)
    status = models.CharField(max_length=16)
    lat = models.FloatField()
    lon = models.FloatField()
    from_lat = models.FloatField(null=True, blank=True)
    from_lon = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["feature", "id"], name="event_feature_id")]

    def __str__(self) -> str:
        return f"{self.kind} {self.feature_id} at {self.at:%Y-%m-%d %H:%M}"
