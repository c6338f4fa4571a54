"""The durable outbox: every signed message is committed here before it is published.

SQLite in WAL mode with synchronous=FULL: a committed message survives kill -9 and power
loss. A message leaves the outbox only when the broker's PUBACK reports success; a PUBACK
with an error code moves it to `refused` with the reason (kept, not retried). Sequence
numbers are allocated in the same transaction that stores the message, so they never repeat.

The outbox is bounded by bytes (`max_bytes`, 0 = unbounded). When a new message pushes it
over, older messages are evicted in the same transaction, in this order:
  1. refused messages (the broker will never take them),
  2. frames in cells the server says are well covered (config topic), oldest first,
  3. other frames outside the server's priority cells, oldest first,
  4. telemetry, oldest first,
  5. anything else, oldest first (frames in priority cells last).
Evictions are counted in `evicted`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

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
"""
# Columns added after the first release; added to older outbox files on open.
COLUMNS = {"kind": "TEXT NOT NULL DEFAULT 'frame'", "cell": "INTEGER NOT NULL DEFAULT 0"}
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


class Outbox:
    def __init__(self, path: Path, max_bytes: int = 0) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.evicted: Counter[str] = Counter()
        self._counters: dict[str, tuple[int, int]] = {}  # name -> (next value, reserved up to)
        self._covered: dict[int, set[int]] = {}  # H3 resolution -> well-covered cells
        self._priority: dict[int, set[int]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
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

    def pending(self, limit: int = 100, after_seq: int = 0) -> list[OutboxItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload FROM outbox WHERE state = 'pending' AND seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [OutboxItem(int(s), str(t), bytes(p)) for s, t, p in rows]

    def ack(self, seq: int) -> None:
        """Remove an acknowledged message. OutboxError when the disk cannot take the change."""
        with self._lock:
            try:
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            except sqlite3.DatabaseError as exc:
                self._rollback()
                raise OutboxError(f"outbox ack of {seq} failed: {exc}") from exc

    def refuse(self, seq: int, reason: str) -> None:
        with self._lock:
            try:
                self._db.execute(
                    "UPDATE outbox SET state = 'refused', error = ? WHERE seq = ?", (reason, seq)
                )
            except sqlite3.DatabaseError as exc:
                self._rollback()
                raise OutboxError(f"outbox refusal of {seq} failed: {exc}") from exc

    def depth(self) -> tuple[int, int]:
        """(pending messages, pending bytes)."""
        with self._lock:
            n, b = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM outbox WHERE state = 'pending'"
            ).fetchone()
        return int(n), int(b)

    def refused(self) -> list[tuple[int, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, error FROM outbox WHERE state = 'refused' ORDER BY seq"
            ).fetchall()
        return [(int(s), str(e)) for s, e in rows]

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
            if state == "refused":
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
                ("refused", "well_covered", "frame", "telemetry", "priority")[rank(row)[0]]
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
