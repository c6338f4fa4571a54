"""Receipts to devices: after each commit, one signed receipt per device concerned.

A receipt names every frame seq of the batch now stored (new, or stored before: a resent
frame is named again) and every refused frame with its reason. Only messages on a
device's frames channel are named (telemetry has a sequence of its own, and a device
does not keep telemetry for delivery). Published QoS 1 on `devices/{id}/receipts`
(docs/protocol.md, "Receipts").
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from ingest.door import Outcome


def receipts_for(outcomes: Sequence[Outcome], now_us: int | None = None) -> list[protocol.Receipt]:
    """The receipts for a committed batch, at most MAX_RECEIPT_ENTRIES entries each."""
    issued = now_us if now_us is not None else time.time_ns() // 1000
    stored: dict[str, list[int]] = {}
    rejected: dict[str, list[protocol.RejectedEntry]] = {}
    for o in outcomes:
        if not o.frame_channel or not protocol.is_valid_device_id(o.device_id):
            continue
        if o.status in ("stored", "duplicate") and o.seq is not None:
            stored.setdefault(o.device_id, []).append(o.seq)
        elif o.status == "rejected" and len(o.payload_sha256) == 32:
            rejected.setdefault(o.device_id, []).append(
                protocol.RejectedEntry(o.seq, o.payload_sha256, o.reason, o.detail)
            )
    out = []
    limit = protocol.receipts.MAX_RECEIPT_ENTRIES
    for device in sorted(set(stored) | set(rejected)):
        entries: list[int | protocol.RejectedEntry] = [
            *sorted(set(stored.get(device, []))),
            *rejected.get(device, []),
        ]
        for start in range(0, len(entries), limit):
            chunk = entries[start : start + limit]
            out.append(
                protocol.Receipt(
                    device_id=device,
                    issued_at_us=issued,
                    receipt_id=secrets.randbits(64),
                    stored=tuple(e for e in chunk if isinstance(e, int)),
                    rejected=tuple(e for e in chunk if isinstance(e, protocol.RejectedEntry)),
                )
            )
    return out


def signed_receipts(outcomes: Sequence[Outcome], key: Ed25519PrivateKey) -> list[tuple[str, bytes]]:
    """(topic, payload) of each receipt for `outcomes`, signed with the server key."""
    return [
        (
            protocol.topic_for(r.device_id, protocol.Channel.RECEIPTS),
            protocol.encode_receipt(r, key),
        )
        for r in receipts_for(outcomes)
    ]
