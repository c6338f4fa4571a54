"""docs/protocol.md shows bytes the code really produces."""

from __future__ import annotations

from pathlib import Path

from protocol import RejectReason, decode, public_key_bytes, verify
from protocol.vectors import BEGIN_MARKER, END_MARKER, example_key, render_worked_example

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def worked_example_in_doc() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(BEGIN_MARKER)
    end = text.index(END_MARKER) + len(END_MARKER)
    return text[start:end]


def wire_hex_in_doc() -> bytes:
    block = worked_example_in_doc().split("```text\n", 1)[1].split("```", 1)[0]
    return bytes.fromhex("".join(line[6:] for line in block.splitlines()))


def test_the_worked_example_in_the_doc_matches_the_code() -> None:
    assert worked_example_in_doc() == render_worked_example()


def test_the_worked_example_hex_decodes_and_verifies_with_the_test_key() -> None:
    signed = decode(wire_hex_in_doc())
    verify(signed, public_key_bytes(example_key()))


def test_the_doc_lists_every_reject_reason() -> None:
    text = DOC.read_text(encoding="utf-8")
    for reason in RejectReason:
        assert f"| `{reason}` |" in text
