"""Leased jobs: enqueue, lease, complete, fail. Plain functions over the Job table.

* `enqueue(kind, keys)` runs inside the caller's transaction (the door's commit), so a job
  exists exactly when the rows it is about do.
* `lease(...)` takes due jobs with `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so
  any number of workers share the table without taking the same job; on SQLite
  (transactions are serialised) it is meant for a single worker. A lease carries a random
  token and expires; an expired lease is due again.
* `complete(lease)` runs inside the transaction that holds the job's results. It locks the
  job row and checks the token: if the lease was lost (it expired and another worker took
  the job) it raises `LeaseLost`, the caller's transaction rolls back, and none of its
  rows are written twice. A worker killed at any moment leaves either nothing of its work
  (the lease expires and the job is due again) or all of it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from webapp.jobs.models import Job


class LeaseLost(Exception):
    """The job was leased again by someone else (our lease expired): roll back."""


@dataclass(frozen=True, slots=True)
class Lease:
    id: int
    kind: str
    key: str
    token: str
    attempts: int


def enqueue(kind: str, keys: Iterable[str]) -> None:
    """Make a job of `kind` due for each key (no duplicates: see the module docstring)."""
    wanted = sorted(set(keys))
    if not wanted:
        return
    now = timezone.now()
    jobs = Job.objects.filter(kind=kind, key__in=wanted)
    jobs.filter(state=Job.State.LEASED).update(requeue=True)
    jobs.filter(state__in=[Job.State.DONE, Job.State.FAILED]).update(
        state=Job.State.PENDING, run_after=now, attempts=0, error=""
    )
    Job.objects.bulk_create(
        [Job(kind=kind, key=k, run_after=now) for k in wanted], ignore_conflicts=True
    )


def lease(kind: str, owner: str, limit: int = 1, lease_s: float = 300.0) -> list[Lease]:
    """Up to `limit` due jobs of `kind`, leased to `owner` for `lease_s` seconds."""
    now = timezone.now()
    due = Q(state=Job.State.PENDING, run_after__lte=now) | Q(
        state=Job.State.LEASED, leased_until__lt=now
    )
    leased = []
    with transaction.atomic():
        rows = list(
            Job.objects.select_for_update(skip_locked=True)
            .filter(due, kind=kind)
            .order_by("run_after", "id")
            .values_list("id", "key", "attempts")[:limit]
        )
        for pk, key, attempts in rows:
            token = secrets.token_hex(16)
            Job.objects.filter(pk=pk).update(
                state=Job.State.LEASED,
                lease_owner=owner[:128],
                lease_token=token,
                leased_until=now + timedelta(seconds=lease_s),
                attempts=F("attempts") + 1,
            )
            leased.append(Lease(pk, kind, key, token, attempts + 1))
    return leased


def _locked(lease: Lease) -> Job:
    job = (
        Job.objects.select_for_update()
        .filter(pk=lease.id, state=Job.State.LEASED, lease_token=lease.token)
        .first()
    )
    if job is None:
        raise LeaseLost(f"the lease of {lease.kind} {lease.key} was lost")
    return job


def complete(lease: Lease, *, more: bool = False) -> None:
    """Finish a leased job inside the transaction holding its results.

    `more`: the handler stopped before all the work was done; the job is due again.
    Work that was enqueued while the job was leased makes it due again too."""
    job = _locked(lease)
    again = more or job.requeue
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.PENDING if again else Job.State.DONE,
        requeue=False,
        run_after=timezone.now(),
        leased_until=None,
        lease_token="",
        attempts=0 if again else job.attempts,
        error="",
    )


def fail(lease: Lease, error: str, *, max_attempts: int = 5, retry_s: float = 30.0) -> bool:
    """Record a failed attempt (in its own transaction); True when the job gave up."""
    with transaction.atomic():
        try:
            job = _locked(lease)
        except LeaseLost:
            return False
        give_up = job.attempts >= max_attempts and not job.requeue
        Job.objects.filter(pk=job.pk).update(
            state=Job.State.FAILED if give_up else Job.State.PENDING,
            requeue=False,
            run_after=timezone.now() + timedelta(seconds=retry_s * job.attempts),
            leased_until=None,
            lease_token="",
            error=error[:4000],
        )
    return give_up


def extend(lease: Lease, lease_s: float) -> None:
    """Keep a long job's lease (LeaseLost if it was lost already)."""
    with transaction.atomic():
        _locked(lease)
        Job.objects.filter(pk=lease.id).update(
            leased_until=timezone.now() + timedelta(seconds=lease_s)
        )


def depth(kind: str) -> int:
    """Jobs of `kind` waiting or running."""
    return Job.objects.filter(kind=kind, state__in=[Job.State.PENDING, Job.State.LEASED]).count()
