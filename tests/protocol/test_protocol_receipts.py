"""Receipts: the server's signed word, as docs/protocol.md describes it byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import protocol
from ingest.reasons import IntakeReason
from protocol.vectors import (
    RECEIPT_BEGIN,
    RECEIPT_END,
    example_receipt,
    render_worked_receipt,
    server_key,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
SERVER = protocol.public_key_bytes(server_key())


def receipt_in_doc() -> bytes:
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index(RECEIPT_BEGIN) : text.index(RECEIPT_END) + len(RECEIPT_END)]
    assert block == render_worked_receipt()
    hexdump = block.split("```text\n", 1)[1].split("```", 1)[0]
    return bytes.fromhex("".join(line[6:] for line in hexdump.splitlines()))


def test_the_worked_receipt_in_the_doc_decodes_and_verifies_with_the_example_server_key() -> None:
    receipt = protocol.decode_receipt(receipt_in_doc(), SERVER)
    expected = example_receipt()
    assert (receipt.device_id, receipt.stored, receipt.rejected) == (
        expected.device_id,
        expected.stored,
        expected.rejected,
    )
    assert receipt.rejected[0].payload_sha256 == hashlib.sha256(b"RM\x01\x01").digest()
    assert receipt.key_id == protocol.key_id(SERVER)


def test_a_receipt_signed_by_another_key_or_altered_is_refused() -> None:
    wire = protocol.encode_receipt(example_receipt(), server_key())
    other = protocol.public_key_bytes(protocol.generate_private_key())
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.decode_receipt(wire, other)
    assert exc.value.reason == protocol.RejectReason.BAD_SIGNATURE
    flipped = bytearray(wire)
    flipped[40] ^= 1  # a stored seq
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.decode_receipt(bytes(flipped), SERVER)
    assert exc.value.reason == protocol.RejectReason.BAD_SIGNATURE
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.decode_receipt(wire[:50], SERVER)
    assert exc.value.reason == protocol.RejectReason.TRUNCATED


@given(
    stored=st.lists(st.integers(0, protocol.MAX_SEQ), max_size=40),
    rejected=st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, protocol.MAX_SEQ)),
            st.binary(min_size=32, max_size=32),
            st.sampled_from([str(r) for r in IntakeReason] + ["bad_magic"]),
            st.text(max_size=300),
        ),
        max_size=10,
    ),
)
def test_any_receipt_round_trips(stored: list[int], rejected: list[tuple]) -> None:  # type: ignore[type-arg]
    entries = tuple(protocol.RejectedEntry(*r) for r in rejected)
    wire = protocol.encode_receipt(
        protocol.Receipt("dev-one", 1_700_000_000_000_000, 7, tuple(stored), entries),
        server_key(),
    )
    back = protocol.decode_receipt(wire, SERVER)
    assert back.stored == tuple(sorted(set(stored)))
    assert [(e.seq, e.payload_sha256, e.reason) for e in back.rejected] == [
        (e.seq, e.payload_sha256, e.reason) for e in entries
    ]
    assert all(len(e.detail.encode()) <= 200 for e in back.rejected)


def test_the_doc_lists_every_reason_a_receipt_can_carry() -> None:
    text = DOC.read_text(encoding="utf-8")
    for reason in [*protocol.RejectReason, *IntakeReason]:
        assert f"| `{reason}` |" in text, reason
