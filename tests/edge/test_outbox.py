"""The outbox allocates sequence numbers durably and gives a frame up only on a receipt."""

from __future__ import annotations

import hashlib
import stat
import time
from pathlib import Path

import pytest

import protocol
from edge.outbox import INTERNAL_ERROR_RETRY_S, Outbox


def receipt(
    stored: tuple[int, ...] = (), rejected: tuple[tuple[int, str], ...] = ()
) -> protocol.Receipt:
    return protocol.Receipt(
        "dev-one",
        time.time_ns() // 1000,
        42,
        stored,
        tuple(
            protocol.RejectedEntry(seq, hashlib.sha256(b"x").digest(), reason, "why")
            for seq, reason in rejected
        ),
    )


def frames(box: Outbox, n: int) -> None:
    for _ in range(n):
        box.put(lambda s: ("devices/dev-one/frames", bytes([s])))


def test_sequence_numbers_start_at_one_increase_and_survive_a_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    assert [box.put(lambda s: ("t", b"x%d" % s)) for _ in range(3)] == [1, 2, 3]
    box.apply_receipt(receipt(stored=(1, 2, 3)), b"r")
    box.close()
    again = Outbox(tmp_path / "o.sqlite3")
    assert again.put(lambda s: ("t", b"y")) == 4


def test_the_outbox_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    Outbox(tmp_path / "o.sqlite3").put(lambda s: ("t", b"x"))
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_a_frame_the_broker_took_stays_until_a_receipt_names_it(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", receipt_timeout_s=60)
    frames(box, 3)
    assert [i.seq for i in box.pending()] == [1, 2, 3]
    for seq in (1, 2, 3):
        box.mark_sent(seq)
    assert box.pending() == [] and box.depth() == (3, 3) and box.awaiting_receipt() == 3
    settled = box.apply_receipt(receipt(stored=(1, 3, 99)), b"signed bytes")
    assert (settled.stored, settled.unknown) == (2, 1)
    assert box.depth() == (1, 1)
    assert box.receipts()[0][1:] == (3, 0, b"signed bytes")


def test_a_frame_no_receipt_names_in_time_is_due_again_later_each_time(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", receipt_timeout_s=10)
    frames(box, 1)
    box.mark_sent(1)
    now = time.time()
    assert box.pending(now=now + 9) == []
    assert [i.seq for i in box.pending(now=now + 11)] == [1]
    box.mark_sent(1)  # the second attempt waits twice as long
    assert box.pending(now=time.time() + 11) == []
    assert [i.seq for i in box.pending(now=time.time() + 21)] == [1]


def test_a_frame_the_broker_turned_away_is_sent_again_later(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    frames(box, 1)
    box.retry_later(1, "No matching subscribers", delay_s=5)
    assert box.pending() == []
    assert [i.seq for i in box.pending(now=time.time() + 6)] == [1]
    assert box.depth() == (1, 1)


def test_a_refused_frame_is_kept_aside_with_its_reason_and_an_internal_error_is_retried(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    frames(box, 3)
    settled = box.apply_receipt(
        receipt(rejected=((2, "timestamp_stale"), (3, "internal_error"))), b"r"
    )
    assert (settled.rejected, settled.retry) == (1, 1)
    assert box.rejected() == [(2, "timestamp_stale: why")]
    assert [i.seq for i in box.pending()] == [1]
    later = time.time() + INTERNAL_ERROR_RETRY_S + 1
    assert [i.seq for i in box.pending(now=later)] == [1, 3]
    assert box.depth() == (2, 2)  # the refused one no longer counts as waiting


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
