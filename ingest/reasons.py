"""Why the server refused a message: protocol reasons plus the intake's own."""

from __future__ import annotations

import enum


class IntakeReason(enum.StrEnum):
    UNREGISTERED_DEVICE = "unregistered_device"
    REVOKED_DEVICE = "revoked_device"
    SEQ_REPLAY = "seq_replay"  # a known (device, seq) with different content
    UNSUPPORTED_CHANNEL = "unsupported_channel"
    BAD_JPEG = "bad_jpeg"  # no SOI/EOI, no SOF, odd components, truncated segments
    IMAGE_TOO_LARGE = "image_too_large"  # header dimensions past the limit (decompression bomb)
    TIMESTAMP_FUTURE = "timestamp_future"  # captured later than now + clock skew allowance
    TIMESTAMP_STALE = "timestamp_stale"  # captured longer ago than the maximum frame age
    INTERNAL_ERROR = "internal_error"  # the server failed to commit it (a bug): retry later
