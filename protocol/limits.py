"""Sizes, ranges and identifier rules of wire protocol v1.

Every implementation (device or server, any language) enforces the same numbers;
`docs/protocol.md` lists them.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "DEVICE_ID_PATTERN",
    "DOMAIN_TAG",
    "MAGIC",
    "MAX_FRAME_BYTES",
    "MAX_JPEG_BYTES",
    "MAX_SEQ",
    "MAX_STRING_BYTES",
    "MAX_TELEMETRY_BYTES",
    "MAX_TIMESTAMP_US",
    "PROTOCOL_VERSION",
    "SIGNATURE_BYTES",
    "is_valid_device_id",
]

PROTOCOL_VERSION: Final = 1
MAGIC: Final = b"RM"
# Prepended to the envelope bytes before signing, so a RoadMesh signature can never be
# replayed as a signature over some other kind of document made with the same key.
DOMAIN_TAG: Final = b"roadmesh-v1\x00"
SIGNATURE_BYTES: Final = 64

MAX_FRAME_BYTES: Final = 2 * 1024 * 1024  # whole MQTT payload of a frame message
MAX_TELEMETRY_BYTES: Final = 64 * 1024  # whole MQTT payload of a telemetry or status message
# Upper bound for the JPEG alone; the real bound is MAX_FRAME_BYTES minus the header.
MAX_JPEG_BYTES: Final = MAX_FRAME_BYTES
MAX_STRING_BYTES: Final = 64  # camera_id, intrinsics_ref (UTF-8 bytes)
# Sequence numbers travel as u64 but stay below 2^63, so every server can keep them in a
# signed 64-bit column. A device counts its frames from 1 (and its telemetry from 1).
MAX_SEQ: Final = 2**63 - 1
# Timestamps are unix microseconds (UTC) from 1970-01-01 to 9999-12-31T23:59:59.999999,
# the range a `datetime` can hold.
MAX_TIMESTAMP_US: Final = 253_402_300_799_999_999

# Also safe as an MQTT username and as one MQTT topic level (no '/', '+', '#', '$').
DEVICE_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{2,63}$"
_DEVICE_ID_RE: Final = re.compile(DEVICE_ID_PATTERN)


def is_valid_device_id(s: str) -> bool:
    """True when `s` is a well-formed device id (3..64 chars of a-z, 0-9, '-')."""
    return isinstance(s, str) and _DEVICE_ID_RE.fullmatch(s) is not None
