"""What the server says back to each device after a commit."""

from __future__ import annotations

import hashlib

import protocol
from ingest.door import Outcome
from ingest.receipts import receipts_for, signed_receipts

H = hashlib.sha256(b"p").digest()


def outcome(status: str, device: str = "dev-a", seq: int | None = 1, **kw: object) -> Outcome:
    return Outcome(
        status,  # type: ignore[arg-type]
        device_id=device,
        seq=seq,
        frame_channel=kw.pop("frame_channel", True),  # type: ignore[arg-type]
        payload_sha256=H,
        **kw,  # type: ignore[arg-type]
    )


def test_a_receipt_names_stored_and_resent_frames_and_every_refusal_per_device() -> None:
    receipts = receipts_for(
        [
            outcome("stored", seq=3),
            outcome("duplicate", seq=2),
            outcome("rejected", seq=4, reason="seq_replay", detail="used"),
            outcome("rejected", seq=None, reason="truncated"),
            outcome("stored", device="dev-b", seq=9),
            outcome("ignored", seq=None, frame_channel=False),  # a status message
            outcome("rejected", seq=5, reason="bad_signature", frame_channel=False),  # telemetry
            outcome("rejected", device="", seq=None, reason="bad_topic"),  # nobody to tell
        ],
        now_us=1_700_000_000_000_000,
    )
    by_device = {r.device_id: r for r in receipts}
    assert sorted(by_device) == ["dev-a", "dev-b"]
    a = by_device["dev-a"]
    assert a.stored == (2, 3)
    assert [(e.seq, e.reason, e.detail) for e in a.rejected] == [
        (4, "seq_replay", "used"),
        (None, "truncated", ""),
    ]
    assert by_device["dev-b"].stored == (9,) and not by_device["dev-b"].rejected


def test_a_commit_larger_than_one_receipt_is_split_and_every_part_is_signed() -> None:
    key = protocol.generate_private_key()
    outcomes = [outcome("stored", seq=s) for s in range(1, 2501)]
    parts = signed_receipts(outcomes, key)
    assert [t for t, _ in parts] == ["devices/dev-a/receipts"] * 3
    decoded = [protocol.decode_receipt(p, protocol.public_key_bytes(key)) for _, p in parts]
    assert sorted(s for r in decoded for s in r.stored) == list(range(1, 2501))
    assert len({r.receipt_id for r in decoded}) == 3
