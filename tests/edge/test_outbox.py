"""The outbox allocates sequence numbers durably and gives a message up only on PUBACK."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.outbox import Outbox


def test_sequence_numbers_increase_and_survive_a_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    assert [box.put(lambda s: ("t", b"x%d" % s)) for _ in range(3)] == [1, 2, 3]
    box.ack(1)
    box.ack(2)
    box.ack(3)
    box.close()
    again = Outbox(tmp_path / "o.sqlite3")
    assert again.put(lambda s: ("t", b"y")) == 4


def test_a_message_stays_until_acked_and_a_refused_one_is_kept_aside(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    for _ in range(3):
        box.put(lambda s: ("devices/d/frames", bytes([s])))
    assert [i.seq for i in box.pending()] == [1, 2, 3]
    box.ack(2)
    box.refuse(3, "Not authorized")
    assert [i.seq for i in box.pending()] == [1]
    assert box.depth() == (1, 1)
    assert box.refused() == [(3, "Not authorized")]


def test_a_source_is_enqueued_only_once(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    assert box.put(lambda s: ("t", b"a"), source="drive::1.jpg") == 1
    assert box.put(lambda s: ("t", b"a"), source="drive::1.jpg") is None
    assert box.depth()[0] == 1


def test_a_failed_build_allocates_no_sequence_number(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")

    def boom(seq: int) -> tuple[str, bytes]:
        raise ValueError("cannot encode")

    with pytest.raises(ValueError):
        box.put(boom, source="s")
    assert box.put(lambda s: ("t", b"ok"), source="s") == 1
