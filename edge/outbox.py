"""The durable outbox: every signed message is committed here before it is published.

SQLite in WAL mode with synchronous=FULL, created 0600: a committed message survives kill -9
and power loss. Sequence numbers are allocated in the same transaction that stores the
message, so they never repeat; the first frame is seq 1.

A frame leaves the outbox only when a signed receipt from the server names it as stored
(`apply_receipt`). The broker's PUBACK means only that the broker took it: a frame the
broker accepted is `sent` and due again after `receipt_timeout_s` (doubling with every
attempt, at most `MAX_RESEND_S`) unless a receipt comes first; a PUBACK with any reason
code other than success puts it back to `pending`, to be sent again later. A receipt that
refuses a frame moves it to `rejected` with the server's reason (kept for `edge status`,
not sent again), except `internal_error`, a server fault, which is retried after
`INTERNAL_ERROR_RETRY_S`. Every receipt is kept (`receipts` table, the signed bytes): it
is the device's proof of what the network accepted.

The outbox is bounded by bytes (`max_bytes`, 0 = unbounded). When a new message pushes it
over, older messages are evicted in the same transaction, in this order:
  1. rejected messages (the server will never take them),
  2. frames in cells the server says are well covered (config topic), oldest first,
  3. other frames outside the server's priority cells, oldest first,
  4. telemetry, oldest first,
  5. anything else, oldest first (frames in priority cells last).
Evictions are counted in `evicted`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, seq);
CREATE TABLE IF NOT EXISTS sources (source TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY,
    receipt_id INTEGER NOT NULL,
    received_at REAL NOT NULL,
    issued_at_us INTEGER NOT NULL,
    stored INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    payload BLOB NOT NULL
);
"""
# Columns added after the first release; added to older outbox files on open.
COLUMNS = {
    "kind": "TEXT NOT NULL DEFAULT 'frame'",
    "cell": "INTEGER NOT NULL DEFAULT 0",
    "next_at": "REAL NOT NULL DEFAULT 0",  # when it is due to be sent (again)
    "attempts": "INTEGER NOT NULL DEFAULT 0",
}
RECEIPT_TIMEOUT_S = 60.0  # a frame the broker took is sent again if no receipt came by then
MAX_RESEND_S = 900.0
INTERNAL_ERROR_RETRY_S = 3600.0
RETRYABLE_REASONS = frozenset({"internal_error"})
# Counters (telemetry seq) are reserved on disk this many at a time, so a full disk does not
# stop telemetry (which reports the full disk) until the block is used up.
COUNTER_BLOCK = 64

logger = logging.getLogger(__name__)


class OutboxError(Exception):
    """The outbox database cannot be used (disk full, damaged file)."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    seq: int
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Settled:
    """What a receipt changed in the outbox."""

    stored: int = 0  # frames dropped: the server has them
    rejected: int = 0  # frames the server refused for good
    retry: int = 0  # frames refused for a server fault: sent again later
    unknown: int = 0  # seqs no longer (or never) in the outbox


class Outbox:
    def __init__(
        self, path: Path, max_bytes: int = 0, receipt_timeout_s: float = RECEIPT_TIMEOUT_S
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.receipt_timeout_s = receipt_timeout_s
        self.evicted: Counter[str] = Counter()
        self._counters: dict[str, tuple[int, int]] = {}  # name -> (next value, reserved up to)
        self._covered: dict[int, set[int]] = {}  # H3 resolution -> well-covered cells
        self._priority: dict[int, set[int]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            # 0600 before SQLite makes it (its -wal and -shm files take the same mode).
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            have = {r[1] for r in self._db.execute("PRAGMA table_info(outbox)")}
            for name, decl in COLUMNS.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {decl}")
            # Before receipts, a broker refusal was final ('refused'): now it is retried.
            self._db.execute("UPDATE outbox SET state = 'pending' WHERE state = 'refused'")
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def set_cells(self, covered: Iterable[int], priority: Iterable[int] = ()) -> None:
        """The server's view of coverage (H3 cells of any resolution), for eviction."""
        import h3.api.basic_int as h3i

        cov: dict[int, set[int]] = {}
        pri: dict[int, set[int]] = {}
        for target, cells in ((cov, covered), (pri, priority)):
            for c in cells:
                target.setdefault(h3i.get_resolution(c), set()).add(c)
        with self._lock:
            self._covered, self._priority = cov, pri

    def put(
        self,
        build: Callable[[int], tuple[str, bytes]],
        source: str | None = None,
        kind: str = "frame",
        cell: int = 0,
    ) -> int | None:
        """Allocate the next sequence number, build (topic, payload) with it and commit both.

        With `source`, a source already enqueued once is skipped (returns None), which makes
        replaying the same recording twice a no-op.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if source is not None:
                        row = self._db.execute(
                            "SELECT seq FROM sources WHERE source = ?", (source,)
                        ).fetchone()
                        if row is not None:
                            self._db.execute("ROLLBACK")
                            return None
                    row = self._db.execute(
                        "SELECT value FROM meta WHERE key = 'next_seq'"
                    ).fetchone()
                    seq = int(row[0]) if row else 1
                    topic, payload = build(seq)
                    self._db.execute(
                        "INSERT INTO outbox (seq, topic, payload, bytes, created_at, kind, cell) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (seq, topic, payload, len(payload), time.time(), kind, cell),
                    )
                    self._db.execute(
                        "INSERT INTO meta (key, value) VALUES ('next_seq', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (seq + 1,),
                    )
                    if source is not None:
                        self._db.execute(
                            "INSERT INTO sources (source, seq) VALUES (?, ?)", (source, seq)
                        )
                    if self.max_bytes:
                        self._evict()
                    self._db.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            except sqlite3.DatabaseError as exc:
                raise OutboxError(f"outbox write failed: {exc}") from exc
        return seq

    def _rollback(self) -> None:
        """Roll back if a transaction is still open: on SQLITE_FULL SQLite may already have."""
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.DatabaseError as exc:  # the original error is the one to report
                logger.warning("outbox rollback failed: %s", exc)

    def pending(self, limit: int = 100, now: float | None = None) -> list[OutboxItem]:
        """Messages due to be sent: never sent, sent back by the broker, or sent and not
        named by a receipt in time; oldest first."""
        due = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload FROM outbox WHERE state IN ('pending', 'sent') "
                "AND next_at <= ? ORDER BY seq LIMIT ?",
                (due, limit),
            ).fetchall()
        return [OutboxItem(int(s), str(t), bytes(p)) for s, t, p in rows]

    def mark_sent(self, seq: int) -> None:
        """The broker took it (PUBACK success): due again unless a receipt names it in time."""
        self._write(
            "UPDATE outbox SET state = 'sent', attempts = attempts + 1, "
            "next_at = ? + MIN(?, ? * (1 << MIN(attempts, 10))) WHERE seq = ? AND state != 'rejected'",
            (time.time(), MAX_RESEND_S, self.receipt_timeout_s, seq),
            f"outbox update of {seq}",
        )

    def retry_later(self, seq: int, reason: str, delay_s: float) -> None:
        """The broker did not take it (a PUBACK with an error code): send it again later."""
        self._write(
            "UPDATE outbox SET state = 'pending', error = ?, next_at = ? WHERE seq = ? "
            "AND state != 'rejected'",
            (reason, time.time() + delay_s, seq),
            f"outbox update of {seq}",
        )

    def apply_receipt(self, receipt: Any, payload: bytes) -> Settled:
        """Settle the frames a verified receipt names (`protocol.Receipt`), and keep it."""
        now = time.time()
        stored = rejected = retry = unknown = 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for seq in receipt.stored:
                        n = self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
                        stored += n
                        unknown += 1 - n
                    for entry in receipt.rejected:
                        if entry.seq is None:
                            unknown += 1
                            continue
                        detail = f"{entry.reason}: {entry.detail}" if entry.detail else entry.reason
                        if entry.reason in RETRYABLE_REASONS:
                            n = self._db.execute(
                                "UPDATE outbox SET state = 'pending', error = ?, next_at = ? "
                                "WHERE seq = ?",
                                (detail, now + INTERNAL_ERROR_RETRY_S, entry.seq),
                            ).rowcount
                            retry += n
                        else:
                            n = self._db.execute(
                                "UPDATE outbox SET state = 'rejected', error = ? WHERE seq = ?",
                                (detail, entry.seq),
                            ).rowcount
                            rejected += n
                        unknown += 1 - n
                    self._db.execute(
                        "INSERT INTO receipts (receipt_id, received_at, issued_at_us, stored, "
                        "rejected, payload) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            receipt.receipt_id - (1 << 63),  # stored signed
                            now,
                            receipt.issued_at_us,
                            len(receipt.stored),
                            len(receipt.rejected),
                            payload,
                        ),
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            except sqlite3.DatabaseError as exc:
                raise OutboxError(f"outbox receipt failed: {exc}") from exc
        return Settled(stored, rejected, retry, unknown)

    def _write(self, sql: str, params: tuple[Any, ...], what: str) -> None:
        with self._lock:
            try:
                self._db.execute(sql, params)
            except sqlite3.DatabaseError as exc:
                self._rollback()
                raise OutboxError(f"{what} failed: {exc}") from exc

    def ack(self, seq: int) -> None:
        """Remove a message for good (a message no receipt will name: status, tests)."""
        self._write("DELETE FROM outbox WHERE seq = ?", (seq,), f"outbox ack of {seq}")

    def depth(self) -> tuple[int, int]:
        """(messages not yet named by a receipt, their bytes)."""
        with self._lock:
            n, b = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM outbox "
                "WHERE state IN ('pending', 'sent')"
            ).fetchone()
        return int(n), int(b)

    def awaiting_receipt(self) -> int:
        """Messages the broker took that no receipt has named yet."""
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'sent'").fetchone()
        return int(n)

    def rejected(self) -> list[tuple[int, str]]:
        """(seq, reason: detail) of the frames the server refused, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, error FROM outbox WHERE state = 'rejected' ORDER BY seq"
            ).fetchall()
        return [(int(s), str(e)) for s, e in rows]

    def receipts(self) -> list[tuple[float, int, int, bytes]]:
        """Every receipt kept: (received at, stored count, rejected count, signed bytes)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT received_at, stored, rejected, payload FROM receipts ORDER BY id"
            ).fetchall()
        return [(float(t), int(s), int(r), bytes(p)) for t, s, r, p in rows]

    def _in(self, cell: int, cells: dict[int, set[int]]) -> bool:
        if not cell or not cells:
            return False
        import h3.api.basic_int as h3i

        res = h3i.get_resolution(cell)
        return any(r <= res and h3i.cell_to_parent(cell, r) in s for r, s in cells.items())

    def _evict(self) -> None:
        """Inside put's transaction: drop messages in the documented order until under max_bytes."""
        (total,) = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM outbox").fetchone()
        excess = int(total) - self.max_bytes
        if excess <= 0:
            return
        rows = self._db.execute(
            "SELECT seq, bytes, kind, cell, state FROM outbox ORDER BY seq"
        ).fetchall()

        def rank(row: tuple[int, int, str, int, str]) -> tuple[int, int]:
            seq, _b, kind, cell, state = row
            if state == "rejected":
                return (0, seq)
            if kind == "frame" and self._in(cell, self._covered):
                return (1, seq)
            if kind == "frame" and not self._in(cell, self._priority):
                return (2, seq)
            if kind == "telemetry":
                return (3, seq)
            return (4, seq)

        for row in sorted(rows, key=rank):
            if excess <= 0:
                break
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (row[0],))
            excess -= int(row[1])
            self.evicted[
                ("rejected", "well_covered", "frame", "telemetry", "priority")[rank(row)[0]]
            ] += 1

    def total_bytes(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM outbox").fetchone()
        return int(n)

    def next_counter(self, name: str) -> int:
        """A durable counter other than frame seqs (e.g. telemetry seq): increasing, never
        repeated across restarts. Values are reserved `COUNTER_BLOCK` at a time, so a restart
        leaves a gap and a full disk only stops the counter once its block is used up."""
        key = f"counter:{name}"
        with self._lock:
            value, limit = self._counters.get(name, (0, 0))
            if value >= limit:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    row = self._db.execute(
                        "SELECT value FROM meta WHERE key = ?", (key,)
                    ).fetchone()
                    value = int(row[0]) if row else 1
                    limit = value + COUNTER_BLOCK
                    self._db.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (key, limit),
                    )
                    self._db.execute("COMMIT")
                except sqlite3.DatabaseError as exc:
                    self._rollback()
                    raise OutboxError(f"outbox write failed: {exc}") from exc
            self._counters[name] = (value + 1, limit)
        return value
