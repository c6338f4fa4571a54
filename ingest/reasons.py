"""Why the server refused a message: protocol reasons plus the intake's own."""

from __future__ import annotations

import enum


class IntakeReason(enum.StrEnum):
    UNREGISTERED_DEVICE = "unregistered_device"
    REVOKED_DEVICE = "revoked_device"
    SEQ_REPLAY = "seq_replay"  # a known (device, seq) with different content
    UNSUPPORTED_CHANNEL = "unsupported_channel"
