"""Debounce: a burst of enqueues of one key becomes one job with the last arguments."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import ConfigurationError, Debounce, JobQueue, JobState, Unique

FOREVER = datetime(2100, 1, 1, tzinfo=timezone.utc)


def test_100_enqueues_inside_the_window_run_once_with_the_last_arguments(jobs: JobQueue) -> None:
    seen: list[tuple[int, str]] = []

    @jobs.task(debounce=Debounce(window=3600, by_args=["doc_id"]))
    def reindex(doc_id: int, text: str) -> None:
        seen.append((doc_id, text))

    ids = {reindex.enqueue(doc_id=1, text=f"v{i}") for i in range(100)}
    other = reindex.enqueue(doc_id=2, text="other")
    assert len(ids) == 1 and other not in ids
    [job_id] = ids
    job = jobs.get(job_id)
    assert job.state is JobState.SCHEDULED and job.args == {"doc_id": 1, "text": "v99"}
    jobs.drain(include_scheduled=True)
    assert sorted(seen) == [(1, "v99"), (2, "other")]
    assert jobs.get(job_id).attempt == 1


def test_each_enqueue_pushes_the_run_time_to_a_window_after_it(jobs: JobQueue) -> None:
    @jobs.task(debounce=Debounce(window=timedelta(hours=1)))
    def digest(note: str) -> None:
        pass

    job_id = digest.enqueue(note="a")
    first = jobs.get(job_id)
    # The window is counted on the database's clock, from the enqueue.
    assert first.run_at - first.created_at >= timedelta(minutes=59)
    assert digest.configure(debounce=timedelta(hours=2)).enqueue(note="b") == job_id
    pushed = jobs.get(job_id)
    assert pushed.run_at - first.run_at >= timedelta(minutes=59)
    assert pushed.args == {"note": "b"}


def test_debounce_from_8_threads_gives_one_job(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task(debounce=Debounce(window=3600))
    def refresh(n: int) -> None:
        pass

    ids: list[int] = []
    barrier = threading.Barrier(8)

    def enqueue(n: int) -> None:
        barrier.wait()
        for round_ in range(5):
            if n % 2 == 0:  # half in the caller's transaction, half on their own
                with session_factory() as db:
                    ids.append(refresh.enqueue(db, n=n * 10 + round_))
                    db.commit()
            else:
                ids.append(refresh.enqueue(n=n * 10 + round_))

    threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 40 and len(set(ids)) == 1
    assert [job.id for job in jobs.list_jobs()] == ids[:1]


def test_a_claimed_job_is_never_rewritten_the_next_enqueue_makes_a_new_one(
    jobs: JobQueue,
) -> None:
    @jobs.task(debounce=Debounce(window=3600))
    def refresh(n: int) -> None:
        pass

    first = refresh.enqueue(n=1)
    jobs.store.stage(until=FOREVER)
    [claimed] = jobs.store.claim(
        worker_id="w", queues=["default"], limit=1, lease=timedelta(seconds=30)
    )
    assert claimed.id == first
    second = refresh.enqueue(n=2)
    assert second != first
    assert jobs.get(first).args == {"n": 1} and jobs.get(first).state is JobState.RUNNING
    assert refresh.enqueue(n=3) == second
    assert jobs.get(second).args == {"n": 3}


def test_a_rolled_back_debounce_leaves_the_pending_job_as_it_was(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task(debounce=Debounce(window=3600))
    def refresh(n: int) -> None:
        pass

    job_id = refresh.enqueue(n=1)
    before = jobs.get(job_id)
    with session_factory() as db:
        assert refresh.enqueue(db, n=2) == job_id
        db.rollback()
    after = jobs.get(job_id)
    assert (after.args, after.run_at) == ({"n": 1}, before.run_at)
    with session_factory() as db:
        refresh.configure(debounce_key="elsewhere", debounce=60).enqueue(db, n=3)
        db.rollback()
    assert [job.id for job in jobs.list_jobs()] == [job_id]


def test_an_enqueue_can_debounce_a_task_without_a_rule(jobs: JobQueue) -> None:
    @jobs.task
    def notify(user_id: int, text: str) -> None:
        pass

    first = notify.configure(debounce_key="user-1", debounce=60).enqueue(user_id=1, text="a")
    assert (
        notify.configure(debounce_key="user-1", debounce=60).enqueue(user_id=1, text="b") == first
    )
    assert (
        notify.configure(debounce_key="user-2", debounce=60).enqueue(user_id=2, text="c") != first
    )
    assert jobs.get(first).args == {"user_id": 1, "text": "b"}


def test_a_retried_debounced_job_runs_again_as_a_plain_job(jobs: JobQueue) -> None:
    @jobs.task(debounce=Debounce(window=3600), max_attempts=1)
    def flaky(n: int) -> None:
        raise RuntimeError("down")

    job_id = flaky.enqueue(n=1)
    jobs.drain(include_scheduled=True)
    assert jobs.get(job_id).state is JobState.DISCARDED
    assert jobs.retry(job_id).state is JobState.AVAILABLE
    assert flaky.enqueue(n=2) != job_id  # the retried job holds no debounce key


def test_debounce_options_are_checked(offline_jobs: JobQueue) -> None:
    jobs = offline_jobs
    with pytest.raises(ConfigurationError, match="choose one"):
        jobs.task(unique=Unique(), debounce=Debounce(window=1))(lambda n: None)
    with pytest.raises(ConfigurationError, match="not a parameter"):
        jobs.task(name="t1", debounce=Debounce(window=1, by_args=["nope"]))(lambda n: None)
    with pytest.raises(ConfigurationError, match="list of parameter names"):
        Debounce(window=1, by_args="n")
    with pytest.raises(ConfigurationError, match="positive"):
        Debounce(window=0)

    @jobs.task(name="plain")
    def plain(n: int) -> None:
        pass

    with pytest.raises(ConfigurationError, match="pass the window with the key"):
        plain.prepare(n=1, debounce_key="k")
    with pytest.raises(ConfigurationError, match="pass the key with the window"):
        plain.prepare(n=1, debounce=5)
    with pytest.raises(TypeError, match="debounce_key must be a string"):
        plain.prepare(n=1, debounce_key=7, debounce=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unique_key= or debounce_key="):
        plain.prepare(n=1, debounce_key="k", debounce=5, unique_key="u")
    with pytest.raises(ValueError, match="instead of delay="):
        plain.prepare(n=1, debounce_key="k", debounce=5, delay=3)


def test_inline_mode_leaves_a_debounced_job_waiting_for_its_window(
    session_factory: sessionmaker[Session], jobs: JobQueue
) -> None:
    inline = JobQueue(session_factory, inline=True)
    seen: list[int] = []

    @inline.task(debounce=Debounce(window=3600))
    def refresh(n: int) -> None:
        seen.append(n)

    first = refresh.enqueue(n=1)
    assert refresh.enqueue(n=2) == first
    job = inline.get(first)
    assert (job.state, job.attempt, job.lease_owner, job.args) == (
        JobState.SCHEDULED,
        0,
        None,
        {"n": 2},
    )
    assert seen == []
    inline.drain(include_scheduled=True)
    assert seen == [2]
