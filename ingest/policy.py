"""What the door accepts: time window, image limits and the fraud thresholds, from ROADMESH_INGEST_*."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.fraud import FraudPolicy
from ingest.jpeg import MAX_PIXELS, MAX_PIXELS_PER_BYTE, MAX_SIDE
from webapp.config import env_int


@dataclass(frozen=True)
class IntakePolicy:
    max_future_s: int = 300  # device clocks may run a little ahead (GNSS time, skew)
    max_age_s: int = 365 * 86400  # an outbox may hold frames for months offline
    max_side: int = MAX_SIDE
    max_pixels: int = MAX_PIXELS
    max_pixels_per_byte: int = MAX_PIXELS_PER_BYTE
    fraud: FraudPolicy = field(default_factory=FraudPolicy)

    @classmethod
    def from_env(cls) -> IntakePolicy:
        return cls(
            max_future_s=env_int("INGEST_MAX_FUTURE_S", 300, minimum=0, maximum=86400),
            max_age_s=env_int("INGEST_MAX_AGE_DAYS", 365, minimum=1, maximum=36500) * 86400,
            max_side=env_int("INGEST_MAX_IMAGE_SIDE", MAX_SIDE, minimum=64, maximum=65535),
            max_pixels=env_int(
                "INGEST_MAX_IMAGE_PIXELS", MAX_PIXELS, minimum=4096, maximum=400_000_000
            ),
            max_pixels_per_byte=env_int(
                "INGEST_MAX_PIXELS_PER_BYTE", MAX_PIXELS_PER_BYTE, minimum=64, maximum=65536
            ),
        )
