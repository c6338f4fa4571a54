"""The three message kinds a device sends, as plain frozen values.

These classes hold values only; `protocol.envelope` turns them into signed bytes and
back and is where every range rule is enforced.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "DeviceState",
    "FixType",
    "Frame",
    "Message",
    "MessageKind",
    "Position",
    "PrivacyCounts",
    "Quality",
    "Status",
    "Telemetry",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _datetime_from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class MessageKind(enum.IntEnum):
    """Byte 3 of every envelope."""

    FRAME = 1
    TELEMETRY = 2
    STATUS = 3


class FixType(enum.IntEnum):
    """GNSS fix quality, best last."""

    NONE = 0
    FIX_2D = 1
    FIX_3D = 2
    DGPS = 3
    RTK_FLOAT = 4
    RTK_FIXED = 5


class DeviceState(enum.IntEnum):
    """What a status message (and the MQTT last will) announces."""

    OFFLINE = 0
    ONLINE = 1


@dataclass(frozen=True, slots=True)
class Position:
    """Camera position when the frame was captured (WGS84).

    On the wire: lat/lon in 1e-7 degrees (about 1 cm), altitude in mm, heading in
    centidegrees, speed in cm/s, HDOP in hundredths. Values are rounded to that grid.
    """

    lat: float
    lon: float
    alt_m: float | None = None
    heading_deg: float | None = None
    speed_mps: float | None = None
    fix: FixType = FixType.FIX_3D
    satellites: int = 0
    hdop: float | None = None


@dataclass(frozen=True, slots=True)
class Quality:
    """Image quality scores computed on the device (float32 on the wire)."""

    sharpness: float = 0.0
    exposure: float = 0.0
    obstruction: float = 0.0


@dataclass(frozen=True, slots=True)
class PrivacyCounts:
    """How many faces and plates the device blurred in this frame."""

    faces: int = 0
    plates: int = 0


@dataclass(frozen=True, slots=True)
class Frame:
    """One geotagged, privacy-blurred JPEG from a device's camera."""

    device_id: str
    seq: int
    captured_at_us: int
    position: Position
    camera_id: str
    intrinsics_ref: str
    quality: Quality
    privacy: PrivacyCounts
    jpeg: bytes = field(repr=False)
    # sha256(jpeg), filled on first use (the decoder fills it with the hash it checked).
    _image_sha256: bytes = field(default=b"", init=False, repr=False, compare=False)

    @property
    def image_sha256(self) -> bytes:
        """SHA-256 of `jpeg` (32 bytes)."""
        digest = self._image_sha256
        if not digest:
            digest = hashlib.sha256(self.jpeg).digest()
            object.__setattr__(self, "_image_sha256", digest)
        return digest

    @property
    def captured_at(self) -> datetime:
        """`captured_at_us` as an aware UTC datetime."""
        return _datetime_from_us(self.captured_at_us)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Free-form device health numbers; `data` is a JSON object."""

    device_id: str
    seq: int
    sent_at_us: int
    data: dict[str, Any] = field(hash=False)

    @property
    def sent_at(self) -> datetime:
        return _datetime_from_us(self.sent_at_us)


@dataclass(frozen=True, slots=True)
class Status:
    """Online/offline announcement; the OFFLINE one is the device's MQTT last will."""

    device_id: str
    sent_at_us: int
    state: DeviceState

    @property
    def sent_at(self) -> datetime:
        return _datetime_from_us(self.sent_at_us)


Message = Frame | Telemetry | Status
