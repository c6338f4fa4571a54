"""Devices and what they sent: accepted frames and rejected messages."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Device(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        REVOKED = "revoked"

    device_id = models.CharField(max_length=64, unique=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="devices"
    )
    public_key = models.BinaryField(max_length=32)
    mqtt_password_hash = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    online = models.BooleanField(default=False)
    # 1.0 = nothing suspicious; lowered by the fraud checks (ingest.trust), with the evidence.
    trust_score = models.FloatField(default=1.0)
    trust_evidence = models.JSONField(default=dict, blank=True)
    trust_updated_at = models.DateTimeField(null=True, blank=True)
    # The newest telemetry the device sent (its outbox depth, counters; ingest.door keeps
    # at most 8 KB of it) and when it was sent.
    telemetry = models.JSONField(default=dict, blank=True)
    telemetry_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.device_id

    @property
    def public_key_hex(self) -> str:
        return bytes(self.public_key).hex()


class Frame(models.Model):
    """A stored frame. Its `state` is written by `webapp.fleet.lifecycle` only."""

    class State(models.TextChoices):
        PENDING = "pending"  # stored at the door; its image checks have not run yet
        ACCEPTED = "accepted"  # every check so far passed: counts for rewards
        FLAGGED = "flagged"  # kept as evidence, excluded from rewards (fraud / quality)
        PROCESSED = "processed"  # accepted and processed by vision

    device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="frames")
    seq = models.BigIntegerField()
    captured_at = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField(auto_now_add=True)
    lat = models.FloatField()
    lon = models.FloatField()
    alt_m = models.FloatField(null=True, blank=True)
    heading_deg = models.FloatField(null=True, blank=True)
    speed_mps = models.FloatField(null=True, blank=True)
    fix_type = models.PositiveSmallIntegerField()
    satellites = models.PositiveSmallIntegerField()
    hdop = models.FloatField(null=True, blank=True)
    camera_id = models.CharField(max_length=64)
    intrinsics_ref = models.CharField(max_length=64)
    h3_r12 = models.BigIntegerField(db_index=True)
    h3_r9 = models.BigIntegerField(db_index=True)
    h3_r7 = models.BigIntegerField(db_index=True)
    image_sha256 = models.CharField(max_length=64, db_index=True)
    image_bytes = models.PositiveIntegerField()
    quality_sharpness = models.FloatField()
    quality_exposure = models.FloatField()
    quality_obstruction = models.FloatField()
    # The device's Ed25519 signature over the envelope (provenance for consumers; null for
    # frames stored before it was kept).
    signature = models.BinaryField(max_length=64, null=True, blank=True)
    faces_blurred = models.PositiveIntegerField(default=0)
    plates_blurred = models.PositiveIntegerField(default=0)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    # Each flag: {"check": str, "score": float 0..1, "reason": str, "evidence": {...}} (ingest.fraud).
    flags = models.JSONField(default=list, blank=True)
    fraud_score = models.FloatField(default=0.0)
    image_width = models.PositiveIntegerField(default=0)
    image_height = models.PositiveIntegerField(default=0)
    # 64-bit perceptual hash (imagehash.phash) as a signed int64, and its four 16-bit bands,
    # indexed: two hashes within Hamming distance 3 share at least one band exactly.
    phash = models.BigIntegerField(null=True, blank=True)
    phash_b0 = models.IntegerField(null=True, blank=True, db_index=True)
    phash_b1 = models.IntegerField(null=True, blank=True, db_index=True)
    phash_b2 = models.IntegerField(null=True, blank=True, db_index=True)
    phash_b3 = models.IntegerField(null=True, blank=True, db_index=True)
    # Server-side quality measured on a reduced decode (the device's own scores are claims).
    server_sharpness = models.FloatField(null=True, blank=True)
    server_brightness = models.FloatField(null=True, blank=True)
    server_highlights = models.FloatField(null=True, blank=True)  # 99th grey percentile
    # 64x36 grey thumbnail (2,304 bytes, row-major uint8) for the audit's camera check.
    thumb = models.BinaryField(null=True, blank=True)
    # The picture's motion from the device's previous frame (`visual_prev`, when it was
    # captured at most a few seconds before): median corner flow as a share of the width,
    # corners tracked, yaw in degrees (None: not measurable), mean grey change 0..1.
    visual_prev = models.BigIntegerField(null=True, blank=True)
    visual_flow = models.FloatField(null=True, blank=True)
    visual_points = models.IntegerField(null=True, blank=True)
    visual_yaw = models.FloatField(null=True, blank=True)
    visual_change = models.FloatField(null=True, blank=True)
    # A global descriptor of the picture for place recognition (ingest.imaging.place_descriptor:
    # HOG of its upper part, int8, 756 bytes): the audit compares it with other frames of the
    # place the frame claims and of other places.
    place_desc = models.BinaryField(null=True, blank=True)
    image_checked_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    audited_at = models.DateTimeField(null=True, blank=True)
    # The reward epoch this frame was counted in (webapp.fleet.lifecycle.mark_rewarded).
    rewarded_epoch = models.PositiveIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "seq"], name="frame_device_seq_unique")
        ]
        indexes = [
            models.Index(fields=["lat", "lon"], name="frame_lat_lon"),
            models.Index(fields=["device", "captured_at"], name="frame_device_time"),
        ]

    def __str__(self) -> str:
        return f"{self.device_id}#{self.seq}"


class RejectedMessage(models.Model):
    """A message the server refused, with a machine-readable reason. Kept as evidence."""

    topic = models.CharField(max_length=255)
    device_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    seq = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=32, db_index=True)
    detail = models.TextField(blank=True, default="")
    payload_sha256 = models.CharField(max_length=64, unique=True)
    payload_bytes = models.PositiveIntegerField()
    times_seen = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.reason} from {self.device_id or '?'}"
