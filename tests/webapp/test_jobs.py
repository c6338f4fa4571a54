"""Leased jobs: no job lost, none run twice at once, none of its work written twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from webapp.jobs import queue
from webapp.jobs.models import Job
from webapp.jobs.worker import Worker

pytestmark = pytest.mark.django_db


def state(key: str = "a") -> tuple[str, bool]:
    job = Job.objects.get(kind="k", key=key)
    return job.state, job.requeue


def test_enqueueing_the_same_key_twice_makes_one_job() -> None:
    queue.enqueue("k", ["a", "b", "a"])
    queue.enqueue("k", ["a"])
    assert sorted(Job.objects.values_list("key", "state")) == [("a", "pending"), ("b", "pending")]


def test_work_that_arrives_while_a_job_is_leased_makes_it_due_again_when_it_completes() -> None:
    queue.enqueue("k", ["a"])
    (lease,) = queue.lease("k", "w1")
    assert state() == ("leased", False)
    queue.enqueue("k", ["a"])
    assert state() == ("leased", True)
    queue.complete(lease)
    assert state() == ("pending", False)
    (again,) = queue.lease("k", "w1")
    queue.complete(again)
    assert state() == ("done", False)
    queue.enqueue("k", ["a"])
    assert state() == ("pending", False)


def test_a_lease_that_expires_is_due_again_and_the_old_holder_can_no_longer_complete() -> None:
    queue.enqueue("k", ["a"])
    (old,) = queue.lease("k", "w1", lease_s=60)
    assert queue.lease("k", "w2") == []
    Job.objects.update(leased_until=timezone.now() - timedelta(seconds=1))
    (new,) = queue.lease("k", "w2")
    assert new.token != old.token and new.attempts == 2
    with pytest.raises(queue.LeaseLost):
        queue.complete(old)
    queue.complete(new)
    assert state() == ("done", False)


class Recorder:
    """A handler that records what it did in the database (a Job row of kind 'out')."""

    kind = "k"

    def __init__(self, fail: int = 0, steal: bool = False) -> None:
        self.fail = fail
        self.steal = steal
        self.runs = 0

    def run(self, lease: queue.Lease) -> bool:
        self.runs += 1
        Job.objects.create(kind="out", key=f"{lease.key}-{self.runs}")
        if self.steal:  # meanwhile the lease expired and another worker took the job
            Job.objects.filter(pk=lease.id).update(lease_token="someone-else")
        if self.runs <= self.fail:
            raise RuntimeError("boom")
        return False


def test_a_worker_whose_lease_was_lost_writes_nothing_of_its_work() -> None:
    queue.enqueue("k", ["a"])
    worker = Worker(Recorder(steal=True))
    assert worker.run_once() == 1
    assert (worker.stats.lost, worker.stats.completed) == (1, 0)
    assert not Job.objects.filter(kind="out").exists()


def test_a_failing_job_is_retried_with_backoff_then_given_up_and_revived_by_new_work() -> None:
    queue.enqueue("k", ["a"])
    handler = Recorder(fail=10)
    worker = Worker(handler, max_attempts=2)
    worker.run_once()
    job = Job.objects.get(kind="k")
    assert (job.state, "boom" in job.error) == ("pending", True)
    assert job.run_after > timezone.now()  # backoff
    assert not Job.objects.filter(kind="out").exists()  # the failed attempt rolled back
    Job.objects.filter(kind="k").update(run_after=timezone.now())
    worker.run_once()
    assert state() == ("failed", False)
    queue.enqueue("k", ["a"])
    assert state() == ("pending", False)


def test_a_handler_that_says_more_keeps_its_job_due() -> None:
    queue.enqueue("k", ["a"])

    class Twice(Recorder):
        def run(self, lease: queue.Lease) -> bool:
            super().run(lease)
            return self.runs < 2

    worker = Worker(Twice())
    worker.run_until_idle()
    assert Job.objects.filter(kind="out").count() == 2
    assert state() == ("done", False)


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_on_postgresql_never_lease_the_same_job() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite runs one worker")
    queue.enqueue("k", [f"j{i}" for i in range(40)])
    got: list[list[str]] = [[], [], [], []]
    start = threading.Barrier(4)

    def lease_all(n: int) -> None:
        start.wait()
        try:
            while leases := queue.lease("k", f"w{n}", limit=3):
                got[n] += [lease.key for lease in leases]
        finally:
            connections.close_all()

    threads = [threading.Thread(target=lease_all, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    every = [k for keys in got for k in keys]
    assert sorted(every) == sorted(f"j{i}" for i in range(40))  # each exactly once
    assert sum(1 for keys in got if keys) >= 2  # they really shared the work
