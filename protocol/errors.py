"""The protocol package's exceptions: one rejection error with a machine-readable reason."""

from __future__ import annotations

import enum

__all__ = ["KeyFileError", "ProtocolError", "RejectReason"]


class RejectReason(enum.StrEnum):
    """Why a payload, topic or value was refused. The values are stored in the database."""

    BAD_MAGIC = "bad_magic"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_KIND = "unknown_kind"
    TRUNCATED = "truncated"
    OVERSIZED = "oversized"
    BAD_FIELD = "bad_field"
    TRAILING_BYTES = "trailing_bytes"
    HASH_MISMATCH = "hash_mismatch"
    BAD_SIGNATURE = "bad_signature"
    BAD_TOPIC = "bad_topic"
    TOPIC_MISMATCH = "topic_mismatch"


class ProtocolError(Exception):
    """A value, payload or topic that breaks the wire contract.

    `reason` is for machines (counters, the database), `detail` for people: it names
    the field and says what was wrong.
    """

    reason: RejectReason
    detail: str

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = RejectReason(reason)
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"

    def __repr__(self) -> str:
        return f"ProtocolError({self.reason.name}, {self.detail!r})"


class KeyFileError(Exception):
    """A private key file that cannot be used: unreadable, not an Ed25519 key, or too open."""
