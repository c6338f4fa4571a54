"""The durable outbox: every signed message is committed here before it is published.

SQLite in WAL mode with synchronous=FULL: a committed message survives kill -9 and power
loss. A message leaves the outbox only when the broker's PUBACK reports success; a PUBACK
with an error code moves it to `refused` with the reason (kept, not retried). Sequence
numbers are allocated in the same transaction that stores the message, so they never repeat.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
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


class OutboxError(Exception):
    """The outbox database cannot be used (disk full, damaged file)."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    seq: int
    topic: str
    payload: bytes


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(
        self, build: Callable[[int], tuple[str, bytes]], source: str | None = None
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
                        "INSERT INTO outbox (seq, topic, payload, bytes, created_at) VALUES (?, ?, ?, ?, ?)",
                        (seq, topic, payload, len(payload), time.time()),
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
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise OutboxError(f"outbox write failed: {exc}") from exc
        return seq

    def pending(self, limit: int = 100, after_seq: int = 0) -> list[OutboxItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload FROM outbox WHERE state = 'pending' AND seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [OutboxItem(int(s), str(t), bytes(p)) for s, t, p in rows]

    def ack(self, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def refuse(self, seq: int, reason: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET state = 'refused', error = ? WHERE seq = ?", (reason, seq)
            )

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
