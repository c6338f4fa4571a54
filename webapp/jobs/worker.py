"""The generic worker loop: lease, run the handler, complete, in one transaction per job.

A handler is plain code with one method, `run(lease) -> bool` (True: more work remains
for this key). It runs inside the transaction that `complete` closes, so its rows and the
job's completion commit together. An exception in a handler rolls its work back and
counts as a failed attempt (retried with backoff, given up after `max_attempts`); the
loop goes on. Infrastructure failures of the lease itself (database down) end the loop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from django.db import close_old_connections, transaction

from webapp.jobs import queue

logger = logging.getLogger(__name__)


class Handler(Protocol):
    kind: str

    def run(self, lease: queue.Lease) -> bool: ...


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerStats:
    completed: int = 0
    failed: int = 0
    lost: int = 0


@dataclass
class Worker:
    handler: Handler
    owner: str = field(default_factory=default_owner)
    lease_s: float = 300.0
    idle_s: float = 0.5
    max_attempts: int = 5
    stats: WorkerStats = field(default_factory=WorkerStats)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run_once(self, limit: int = 1) -> int:
        """Lease and run up to `limit` due jobs; how many ran."""
        leases = queue.lease(self.handler.kind, self.owner, limit, self.lease_s)
        for lease in leases:
            self._run(lease)
        return len(leases)

    def _run(self, lease: queue.Lease) -> None:
        try:
            with transaction.atomic():
                more = self.handler.run(lease)
                queue.complete(lease, more=more)
            self.stats.completed += 1
        except queue.LeaseLost:
            self.stats.lost += 1
            logger.warning(
                "lost the lease of %s %s; its work was rolled back", lease.kind, lease.key
            )
        except Exception as exc:
            self.stats.failed += 1
            logger.exception("%s %s failed (attempt %d)", lease.kind, lease.key, lease.attempts)
            gave_up = queue.fail(
                lease, f"{type(exc).__name__}: {exc}", max_attempts=self.max_attempts
            )
            if gave_up:
                logger.error(
                    "%s %s gave up after %d attempts", lease.kind, lease.key, lease.attempts
                )

    def run_until_idle(self, timeout_s: float = 600.0) -> None:
        """Run jobs until none is due (tests, benchmarks, one-shot commands)."""
        deadline = time.monotonic() + timeout_s
        while self.run_once() and time.monotonic() < deadline:
            pass

    def run_forever(self) -> None:
        while not self.stopping.is_set():
            close_old_connections()  # a long-lived process: drop connections gone stale
            if not self.run_once():
                self.stopping.wait(self.idle_s)

    def stop(self) -> None:
        self.stopping.set()
