"""Per-key limits (KeyLimit): concurrency, strict FIFO order and rate per key, on every
database, with workers in this process (tests/acceptance/test_key_limit_processes.py runs
them across worker processes)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import ConfigurationError, JobQueue, JobState, KeyLimit
from tests.helpers import eventually, finished

LEASE = timedelta(seconds=30)


class PerKey:
    """What the tasks saw: how many jobs of each key ran at once, and their start order."""

    def __init__(self) -> None:
        self.active: dict[Any, int] = {}
        self.peak: dict[Any, int] = {}
        self.starts: dict[Any, list[int]] = {}
        self.lock = threading.Lock()

    def run(self, key: Any, n: int, seconds: float) -> None:
        with self.lock:
            self.active[key] = self.active.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), self.active[key])
            self.starts.setdefault(key, []).append(n)
        time.sleep(seconds)  # the work of the task: lets jobs of one key overlap if allowed
        with self.lock:
            self.active[key] -= 1


def test_one_running_job_per_key_inside_two_workers(jobs: JobQueue) -> None:
    """Limit 1 holds with two workers' claimers (limits above 1 are counted exactly by the
    store's claims: test_8_claimers_at_once_admit_exactly_the_keys_allowance)."""
    seen = PerKey()

    @jobs.task(limit=KeyLimit(by_args=["user_id"], concurrency=1))
    def sync_user(user_id: int, n: int) -> None:
        seen.run(user_id, n, 0.02)

    @jobs.task
    def unkeyed(n: int) -> None:
        seen.run("free", n, 0)

    # Key by key, so that a claim that looked only at the head of the queue would see one key.
    new = [sync_user.prepare(user_id=u, n=i) for u in range(4) for i in range(6)]
    ids = jobs.enqueue_many(None, new + [unkeyed.prepare(n=i) for i in range(10)])
    workers = [jobs.worker(concurrency=4, poll_interval=0.02) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        eventually(lambda: finished(jobs, *ids), timeout=90)
    finally:
        for worker in workers:
            worker.stop()
    assert {jobs.get(i).state for i in ids} == {JobState.COMPLETED}
    assert {user: seen.peak[user] for user in range(4)} == {0: 1, 1: 1, 2: 1, 3: 1}
    assert sorted(seen.starts["free"]) == list(range(10))


def test_a_claim_takes_one_job_per_free_key_and_none_of_a_busy_key(jobs: JobQueue) -> None:
    """The rule on the store's claims, without timing: keys A (3 jobs) and B (1 job), limit 1."""

    @jobs.task(limit=KeyLimit(by_args=["key"], concurrency=1))
    def work(key: str, n: int) -> None:
        pass

    a = [work.enqueue(key="A", n=i) for i in range(3)]
    b = work.enqueue(key="B", n=0)
    name = work.name

    def claim(limit: int) -> list[int]:
        claimed = jobs.store.claim_keyed(
            worker_id="w", queues=["default"], limit=limit, lease=LEASE, tasks=[name]
        )
        return [job.id for job in claimed]

    assert claim(10) == [a[0], b]
    assert claim(10) == []  # A and B each have a running job
    [running] = [j for j in jobs.list_jobs(state="running") if j.id == a[0]]
    assert jobs.store.complete_many([(running, None)]) == {a[0]}
    assert claim(10) == [a[1]]


def test_fifo_runs_each_keys_jobs_one_at_a_time_in_enqueue_order(jobs: JobQueue) -> None:
    seen = PerKey()

    @jobs.task(limit=KeyLimit(by_args=["order_id"], fifo=True), priority=0)
    def step(order_id: int, n: int) -> None:
        seen.run(order_id, n, 0.01)

    # Later jobs get better priorities and earlier run times: FIFO still goes by enqueue order.
    ids = [step.configure(priority=-i).enqueue(order_id=o, n=i) for i in range(8) for o in range(3)]
    with jobs.worker(concurrency=4, poll_interval=0.02):
        eventually(lambda: finished(jobs, *ids), timeout=90)
    assert seen.starts == {o: list(range(8)) for o in range(3)}
    assert seen.peak == {0: 1, 1: 1, 2: 1}


def test_a_failing_fifo_head_blocks_its_key_until_it_succeeds(jobs: JobQueue) -> None:
    seen = PerKey()
    attempts: list[int] = []

    @jobs.task(limit=KeyLimit(by_args=["order_id"], fifo=True), backoff=0.05, max_attempts=5)
    def step(order_id: int, n: int) -> None:
        if n == 0 and len(attempts) < 2:
            attempts.append(n)
            raise RuntimeError("not yet")
        seen.run(order_id, n, 0)

    ids = [step.enqueue(order_id=1, n=i) for i in range(4)]
    with jobs.worker(concurrency=4, poll_interval=0.02):
        eventually(lambda: finished(jobs, *ids), timeout=60)
    assert seen.starts == {1: [0, 1, 2, 3]}
    assert jobs.get(ids[0]).attempt == 3


def test_a_discarded_fifo_head_lets_the_next_job_of_its_key_run(jobs: JobQueue) -> None:
    seen = PerKey()

    @jobs.task(limit=KeyLimit(by_args=["order_id"], fifo=True), max_attempts=1)
    def step(order_id: int, n: int) -> None:
        if n == 0:
            raise RuntimeError("broken")
        seen.run(order_id, n, 0)

    ids = [step.enqueue(order_id=1, n=i) for i in range(3)]
    with jobs.worker(concurrency=2, poll_interval=0.02):
        eventually(lambda: finished(jobs, *ids), timeout=60)
    assert jobs.get(ids[0]).state is JobState.DISCARDED
    assert seen.starts == {1: [1, 2]}


def test_a_rate_per_key_admits_its_count_per_period(jobs: JobQueue) -> None:
    """The rule on the store's claims: 2 starts per hour for each key, counted by key."""

    @jobs.task(limit=KeyLimit(by_args=["tenant"], rate=(2, 3600)))
    def export(tenant: str, n: int) -> None:
        pass

    a = [export.enqueue(tenant="A", n=i) for i in range(4)]
    b = [export.enqueue(tenant="B", n=i) for i in range(3)]

    def claim() -> list[int]:
        claimed = jobs.store.claim_keyed(
            worker_id="w", queues=["default"], limit=10, lease=LEASE, tasks=[export.name]
        )
        return sorted(job.id for job in claimed)

    assert claim() == sorted(a[:2] + b[:2])
    assert claim() == []  # both windows are full, running or not
    assert {jobs.get(i).state for i in a[2:] + b[2:]} == {JobState.AVAILABLE}


def test_a_rate_per_key_opens_the_next_window_later(jobs: JobQueue) -> None:
    @jobs.task(limit=KeyLimit(by_args=["tenant"], rate=(1, 1.0)))
    def export(tenant: str, n: int) -> None:
        pass

    ids = [export.enqueue(tenant="A", n=i) for i in range(3)]

    def claim() -> list[int]:
        claimed = jobs.store.claim_keyed(
            worker_id="w", queues=["default"], limit=10, lease=LEASE, tasks=[export.name]
        )
        return [job.id for job in claimed]

    assert claim() == ids[:1]
    assert claim() == []  # the same 1 s window
    assert eventually(claim, timeout=30) == ids[1:2]  # once the next window opens


def test_shared_rule_names_share_keys_across_tasks(jobs: JobQueue) -> None:
    tenant = KeyLimit(by_args=["tenant"], concurrency=1, name="tenant")

    @jobs.task(limit=tenant)
    def export(tenant: str) -> None:
        pass

    @jobs.task(limit=tenant)
    def report(tenant: str) -> None:
        pass

    first = export.enqueue(tenant="t")
    report.enqueue(tenant="t")
    claimed = jobs.store.claim_keyed(
        worker_id="w",
        queues=["default"],
        limit=5,
        lease=LEASE,
        tasks=[export.name, report.name],
    )
    assert [job.id for job in claimed] == [first]


def test_limit_key_at_enqueue_replaces_the_key_from_arguments(jobs: JobQueue) -> None:
    @jobs.task(limit=KeyLimit(by_args=["user_id"], concurrency=1))
    def sync(user_id: int) -> None:
        pass

    a = sync.configure(limit_key="account-9").enqueue(user_id=1)
    b = sync.configure(limit_key="account-9").enqueue(user_id=2)
    c = sync.enqueue(user_id=1)
    assert jobs.get(a).flow_key == jobs.get(b).flow_key != jobs.get(c).flow_key
    claimed = jobs.store.claim_keyed(
        worker_id="w", queues=["default"], limit=5, lease=LEASE, tasks=[sync.name]
    )
    assert sorted(job.id for job in claimed) == [a, c]


def test_a_key_limit_holds_inside_a_globally_limited_queue(jobs: JobQueue) -> None:
    seen = PerKey()

    @jobs.task(queue="scarce", limit=KeyLimit(by_args=["key"], concurrency=1))
    def work(key: int, n: int) -> None:
        seen.run(key, n, 0.02)

    jobs.configure_queue("scarce", global_limit=3)
    ids = jobs.enqueue_many(None, [work.prepare(key=k, n=i) for k in range(2) for i in range(5)])
    with jobs.worker(concurrency=4, poll_interval=0.02, queues=["scarce"]):
        eventually(lambda: finished(jobs, *ids), timeout=60)
    assert seen.peak == {0: 1, 1: 1}


def test_poison_key_values_make_keys_that_fit_every_database(jobs: JobQueue) -> None:
    @jobs.task(limit=KeyLimit(by_args=["value"], concurrency=1))
    def odd(value: Any) -> None:
        pass

    ids = [
        odd.enqueue(value="x" * 100_000),
        odd.enqueue(value=1, limit_key="nul\x00 and \udcff surrogate"),
        odd.enqueue(value={"deep": [[[1.5, None, True]]]}),
        odd.enqueue(value="x" * 100_000, limit_key="é" * 10_000),
    ]
    keys = [jobs.get(i).flow_key for i in ids]
    assert len(set(keys)) == 4
    assert all(key is not None and len(key) <= 255 and key.isascii() for key in keys)
    assert jobs.drain().completed == ids


def test_jobs_enqueued_before_the_task_had_a_limit_still_run(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task(name="legacy")
    def before(user_id: int) -> None:
        pass

    old = before.enqueue(user_id=1)
    new_code = JobQueue(session_factory)  # the next deploy: the task has a KeyLimit now

    @new_code.task(name="legacy", limit=KeyLimit(by_args=["user_id"], concurrency=1))
    def after(user_id: int) -> None:
        pass

    assert jobs.get(old).flow_key is None
    with new_code.worker(concurrency=1, poll_interval=0.02):
        eventually(lambda: finished(jobs, old), timeout=30)
    assert jobs.get(old).state is JobState.COMPLETED


def test_key_limits_are_checked(offline_jobs: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="limits nothing"):
        KeyLimit(by_args=["a"])
    with pytest.raises(ConfigurationError, match="at least 1"):
        KeyLimit(by_args=["a"], concurrency=0)
    with pytest.raises(ConfigurationError, match="leave concurrency unset"):
        KeyLimit(by_args=["a"], fifo=True, concurrency=3)
    with pytest.raises(ConfigurationError, match="positive period"):
        KeyLimit(by_args=["a"], rate=(1, 0))
    with pytest.raises(ConfigurationError, match="list of parameter names"):
        KeyLimit(by_args="a", concurrency=1)
    with pytest.raises(ConfigurationError, match="which limits nothing"):
        KeyLimit(by_args=True, concurrency=1)
    with pytest.raises(ConfigurationError, match="did you mean 'user_id'"):
        offline_jobs.task(name="t", limit=KeyLimit(by_args=["user"], concurrency=1))(
            lambda user_id: None
        )

    @offline_jobs.task(name="plain")
    def plain(n: int) -> None:
        pass

    @offline_jobs.task(name="keyed", limit=KeyLimit(concurrency=1))
    def keyed(n: int) -> None:
        pass

    with pytest.raises(ConfigurationError, match="has no KeyLimit"):
        plain.prepare(n=1, limit_key="k")
    with pytest.raises(TypeError, match="limit_key must be a string"):
        keyed.prepare(n=1, limit_key=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("limit", "admitted"),
    [(KeyLimit(by_args=["key"], rate=(5, 3600)), 5), (KeyLimit(by_args=["key"], concurrency=2), 2)],
    ids=["rate", "concurrency"],
)
def test_8_claimers_at_once_admit_exactly_the_keys_allowance(
    jobs: JobQueue, limit: KeyLimit, admitted: int
) -> None:
    @jobs.task(limit=limit)
    def work(key: str, n: int) -> None:
        pass

    jobs.enqueue_many(None, [work.prepare(key="K", n=i) for i in range(20)])
    barrier = threading.Barrier(8)
    claimed: list[int] = []

    def claim(worker: int) -> None:
        barrier.wait()
        for _ in range(3):
            got = jobs.store.claim_keyed(
                worker_id=f"w{worker}", queues=["default"], limit=3, lease=LEASE, tasks=[work.name]
            )
            claimed.extend(job.id for job in got)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == admitted and len(set(claimed)) == admitted
    assert len(jobs.list_jobs(state="running")) == admitted


def test_prune_forgets_keys_no_unfinished_job_needs(jobs: JobQueue) -> None:
    @jobs.task(limit=KeyLimit(by_args=["key"], concurrency=1))
    def work(key: str) -> None:
        pass

    a, b = work.enqueue(key="A"), work.enqueue(key="B")
    claimed = jobs.store.claim_keyed(
        worker_id="w", queues=["default"], limit=5, lease=LEASE, tasks=[work.name]
    )
    assert [job.id for job in claimed] == [a, b]  # each key has its row now
    assert jobs.store.complete_many([(claimed[0], None)]) == {a}
    assert jobs.store.prune_keys(idle_for=timedelta(0)) == 1  # A's; B's job still runs
    assert jobs.store.prune_keys(idle_for=timedelta(0)) == 0
    assert jobs.store.complete_many([(claimed[1], None)]) == {b}
    assert jobs.store.prune_keys(idle_for=timedelta(0)) == 1
