"""Receipts: the server's signed word on what it stored and what it refused.

After each commit the server publishes one receipt per device concerned on
`devices/{device_id}/receipts` (QoS 1). It lists the sequence numbers now stored (newly
or before: a resent frame is named again) and the refused messages with their reasons.
A device drops a frame from its outbox only when a receipt names it, and keeps the
receipts as its proof of what the network accepted. Layout and signing: docs/protocol.md,
"Receipts". Signed with the server's Ed25519 key (its public half is served by the API
and written into the device's `device.json` at provisioning).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .envelope import _device_id, _read_device_id, _Reader, _timestamp, _utf8
from .errors import ProtocolError, RejectReason
from .keys import load_public_key, public_key_bytes
from .limits import MAX_SEQ, MAX_TELEMETRY_BYTES, SIGNATURE_BYTES

__all__ = [
    "MAX_RECEIPT_BYTES",
    "MAX_RECEIPT_ENTRIES",
    "RECEIPT_DOMAIN_TAG",
    "RECEIPT_MAGIC",
    "UNKNOWN_SEQ",
    "Receipt",
    "RejectedEntry",
    "decode_receipt",
    "encode_receipt",
    "key_id",
]

RECEIPT_MAGIC: Final = b"RR"
RECEIPT_VERSION: Final = 1
RECEIPT_KIND: Final = 1
RECEIPT_DOMAIN_TAG: Final = b"roadmesh-receipt-v1\x00"
MAX_RECEIPT_BYTES: Final = MAX_TELEMETRY_BYTES
MAX_RECEIPT_ENTRIES: Final = 1000  # stored and rejected together; the server splits above it
MAX_DETAIL_BYTES: Final = 200
MAX_REASON_BYTES: Final = 32
UNKNOWN_SEQ: Final = 2**64 - 1  # a refused payload whose sequence number could not be read

_HEADER: Final = struct.Struct(
    ">2sBBqQ8s"
)  # magic, version, kind, issued_at_us, receipt_id, key id
_U16: Final = struct.Struct(">H")
_U64: Final = struct.Struct(">Q")


def key_id(public_key: bytes) -> bytes:
    """The 8-byte id of a server key: the first 8 bytes of SHA-256 of its raw public key."""
    return hashlib.sha256(public_key).digest()[:8]


@dataclass(frozen=True, slots=True)
class RejectedEntry:
    """A refused message: its seq (None when unreadable), payload hash, reason and detail."""

    seq: int | None
    payload_sha256: bytes
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Receipt:
    device_id: str
    issued_at_us: int
    receipt_id: int
    stored: tuple[int, ...] = ()
    rejected: tuple[RejectedEntry, ...] = field(default_factory=tuple)
    key_id: bytes = b""  # set by decode: which server key signed it


def _truncate_utf8(text: str, limit: int) -> bytes:
    raw = text.encode("utf-8", errors="replace")
    if len(raw) <= limit:
        return raw
    return raw[:limit].decode("utf-8", errors="ignore").encode("utf-8")


def encode_receipt(receipt: Receipt, server_key: Ed25519PrivateKey) -> bytes:
    """Signed receipt bytes; ProtocolError(BAD_FIELD / OVERSIZED) for values out of range."""
    seqs = sorted(set(receipt.stored))
    entries = len(seqs) + len(receipt.rejected)
    if entries > MAX_RECEIPT_ENTRIES:
        raise ProtocolError(
            RejectReason.OVERSIZED,
            f"receipt: {entries} entries, at most {MAX_RECEIPT_ENTRIES} (split it)",
        )
    parts = [
        _HEADER.pack(
            RECEIPT_MAGIC,
            RECEIPT_VERSION,
            RECEIPT_KIND,
            _timestamp(receipt.issued_at_us, "issued_at_us"),
            receipt.receipt_id & (2**64 - 1),
            key_id(public_key_bytes(server_key)),
        ),
        _device_id(receipt.device_id),
        _U16.pack(len(seqs)),
    ]
    for seq in seqs:
        if not 0 <= seq <= MAX_SEQ:
            raise ProtocolError(RejectReason.BAD_FIELD, f"stored: seq {seq} out of range")
        parts.append(_U64.pack(seq))
    parts.append(_U16.pack(len(receipt.rejected)))
    for entry in receipt.rejected:
        seq = UNKNOWN_SEQ if entry.seq is None else entry.seq
        if entry.seq is not None and not 0 <= entry.seq <= MAX_SEQ:
            seq = UNKNOWN_SEQ
        if len(entry.payload_sha256) != 32:
            raise ProtocolError(RejectReason.BAD_FIELD, "rejected: payload_sha256 is not 32 bytes")
        detail = _truncate_utf8(entry.detail, MAX_DETAIL_BYTES)
        parts += [
            _U64.pack(seq),
            entry.payload_sha256,
            _utf8(entry.reason, "rejected.reason", 1, MAX_REASON_BYTES),
            _U16.pack(len(detail)),
            detail,
        ]
    body = b"".join(parts)
    signature = server_key.sign(RECEIPT_DOMAIN_TAG + body)
    payload = body + signature
    if len(payload) > MAX_RECEIPT_BYTES:
        raise ProtocolError(RejectReason.OVERSIZED, f"receipt: {len(payload)} bytes")
    return payload


def decode_receipt(payload: bytes, server_public_key: bytes) -> Receipt:
    """Parse and verify a receipt with the server's raw public key; ProtocolError otherwise."""
    if len(payload) > MAX_RECEIPT_BYTES:
        raise ProtocolError(RejectReason.OVERSIZED, f"receipt: {len(payload)} bytes")
    if len(payload) < _HEADER.size + SIGNATURE_BYTES:
        raise ProtocolError(RejectReason.TRUNCATED, f"receipt: only {len(payload)} bytes")
    view = memoryview(payload)
    magic, version, kind, issued_at_us, receipt_id, kid = _HEADER.unpack_from(view, 0)
    if magic != RECEIPT_MAGIC:
        raise ProtocolError(RejectReason.BAD_MAGIC, f"receipt: magic {bytes(magic)!r}")
    if version != RECEIPT_VERSION:
        raise ProtocolError(RejectReason.UNSUPPORTED_VERSION, f"receipt: version {version}")
    if kind != RECEIPT_KIND:
        raise ProtocolError(RejectReason.UNKNOWN_KIND, f"receipt: kind {kind}")
    body_end = len(payload) - SIGNATURE_BYTES
    reader = _Reader(view[:body_end], _HEADER.size)
    device_id = _read_device_id(reader)
    (n_stored,) = reader.unpack(_U16, "stored count")
    stored = tuple(reader.unpack(_U64, "stored seq")[0] for _ in range(n_stored))
    (n_rejected,) = reader.unpack(_U16, "rejected count")
    rejected = []
    for _ in range(n_rejected):
        (seq,) = reader.unpack(_U64, "rejected seq")
        digest = bytes(reader.take(32, "rejected payload_sha256"))
        reason = reader.string("rejected.reason", 1, MAX_REASON_BYTES)
        (length,) = reader.unpack(_U16, "rejected detail length")
        try:
            detail = str(reader.take(length, "rejected detail"), "utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(RejectReason.BAD_FIELD, "rejected detail: not UTF-8") from None
        rejected.append(RejectedEntry(None if seq == UNKNOWN_SEQ else seq, digest, reason, detail))
    if reader.remaining:
        raise ProtocolError(
            RejectReason.TRAILING_BYTES, f"receipt: {reader.remaining} bytes after the entries"
        )
    if bytes(kid) != key_id(server_public_key):
        raise ProtocolError(
            RejectReason.BAD_SIGNATURE, "receipt: signed with another server key than the known one"
        )
    try:
        load_public_key(server_public_key).verify(
            bytes(view[body_end:]), RECEIPT_DOMAIN_TAG + bytes(view[:body_end])
        )
    except InvalidSignature:
        raise ProtocolError(
            RejectReason.BAD_SIGNATURE, "receipt: the signature does not verify"
        ) from None
    return Receipt(
        device_id=device_id,
        issued_at_us=_timestamp(issued_at_us, "issued_at_us"),
        receipt_id=receipt_id,
        stored=stored,
        rejected=tuple(rejected),
        key_id=bytes(kid),
    )
