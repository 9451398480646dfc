"""sqljobs through PgBouncer in transaction pooling mode (issue 15): enqueue, claim, complete,
unique, rescue and cron through the pooler; no server-side prepared statements; LISTEN/NOTIFY
detected as unavailable there (polling), or taken from a direct connection."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobQueue, JobState, Unique, events
from tests.conftest import Base
from tests.helpers import EventLog, add_counters, counter_total, eventually, increment

pytestmark = pytest.mark.dialects("postgresql", reason="PgBouncer is a PostgreSQL pooler")


@pytest.fixture
def through_pgbouncer(pgbouncer_url: str, engine: Any) -> Iterator[Callable[..., JobQueue]]:
    """Make JobQueues whose engine goes through PgBouncer (the ``engine`` fixture made the
    schema for the test tables on the direct connection)."""
    made: list[JobQueue] = []

    def make(**options: Any) -> JobQueue:
        connect_args = options.pop("connect_args", {})
        bounced = create_engine(pgbouncer_url, pool_size=20, connect_args=connect_args)
        jobs = JobQueue(sessionmaker(bounced), **options)
        made.append(jobs)
        return jobs

    yield make
    for jobs in made:
        jobs.close()
        jobs.engine.dispose()


def test_jobs_are_enqueued_claimed_and_completed_exactly_once_through_pgbouncer(
    through_pgbouncer: Callable[..., JobQueue],
) -> None:
    jobs = through_pgbouncer(pooler="transaction")
    jobs.create_schema()
    add_counters(jobs.session_factory, 4)

    @jobs.task(name="bump", unique=Unique(by_args=["key"]))
    def bump(session: Session, counter_id: int, key: int) -> None:
        increment(session, counter_id)

    # One enqueue per job: each statement runs far more than psycopg's prepare threshold (5).
    ids = [bump.enqueue(counter_id=1 + i % 4, key=i) for i in range(80)]
    assert bump.enqueue(counter_id=1, key=0) == ids[0]  # the unique key holds through it
    with jobs.worker(concurrency=4, poll_interval=0.05):
        eventually(lambda: jobs.counts() == {("default", JobState.COMPLETED): 80}, timeout=60)
    assert counter_total(jobs.session_factory) == 80
    assert {(j.attempt, j.errors) for j in jobs.list_jobs(limit=100)} == {(1, ())}
    with jobs.engine.connect() as conn:
        assert conn.connection.driver_connection.prepare_threshold is None  # type: ignore[union-attr]


def test_rescue_and_cron_work_through_pgbouncer(
    through_pgbouncer: Callable[..., JobQueue],
) -> None:
    jobs = through_pgbouncer(pooler="transaction")
    jobs.create_schema()

    @jobs.task(name="lost")
    def lost() -> None:
        pass

    job_id = lost.enqueue()
    jobs.store.claim(worker_id="gone", queues=["default"], limit=1, lease=timedelta(seconds=0.2))
    assert eventually(lambda: jobs.store.rescue()) == [job_id]
    rescued = jobs.get(job_id)
    assert rescued.state is JobState.AVAILABLE and rescued.errors[-1].type == "NeverStarted"

    @jobs.periodic("* * * * * */1", name="tick")  # every second
    def tick() -> None:
        pass

    with jobs.worker(concurrency=2, poll_interval=0.05, heartbeat_interval=0.1):
        eventually(lambda: len(jobs.list_jobs(task="tick", state="completed")) >= 3, timeout=60)
    slots = [j.run_at for j in jobs.list_jobs(task="tick")]
    assert len(slots) == len(set(slots))
    assert jobs.get(job_id).state is JobState.COMPLETED


def test_a_worker_behind_pgbouncer_detects_that_notifications_never_reach_it_and_polls(
    through_pgbouncer: Callable[..., JobQueue],
) -> None:
    # No pooler= given: only the listener's own check can tell. (Prepared statements off by
    # hand, so that this test sees the listener alone.)
    jobs = through_pgbouncer(connect_args={"prepare_threshold": None})
    jobs.create_schema()

    @jobs.task(name="quick")
    def quick() -> None:
        pass

    log = EventLog(jobs, events.WORKER_POLLING, events.WORKER_LISTENING)
    with jobs.worker(concurrency=1, poll_interval=0.05):
        polling = log.wait_for(events.WORKER_POLLING)
        job_id = quick.enqueue()
        eventually(lambda: jobs.get(job_id).state is JobState.COMPLETED)
    assert "LISTEN/NOTIFY does not reach this worker" in polling["reason"]
    assert log.count(events.WORKER_LISTENING) == 0


def test_a_direct_listen_url_wakes_a_worker_whose_jobs_go_through_pgbouncer(
    through_pgbouncer: Callable[..., JobQueue], db_url: str
) -> None:
    jobs = through_pgbouncer(pooler="transaction", listen=db_url)
    jobs.create_schema()

    @jobs.task(name="quick")
    def quick() -> None:
        pass

    log = EventLog(jobs, events.WORKER_LISTENING, events.WORKER_IDLE, events.WORKER_POLLING)
    with jobs.worker(concurrency=1, poll_interval=600):  # only a notification can wake it
        log.wait_for(events.WORKER_LISTENING)
        log.wait_for(events.WORKER_IDLE, reason="no jobs")
        job_id = quick.enqueue()
        eventually(lambda: jobs.get(job_id).state is JobState.COMPLETED)
    assert log.count(events.WORKER_POLLING) == 0


def test_the_pooler_option_is_refused_where_it_makes_no_sense(offline_jobs: JobQueue) -> None:
    from sqljobs import ConfigurationError

    with pytest.raises(ConfigurationError, match="pooler='transaction' is for PostgreSQL"):
        JobQueue(offline_jobs.session_factory, pooler="transaction")
    with pytest.raises(ConfigurationError, match="pooler must be None or 'transaction'"):
        JobQueue(offline_jobs.session_factory, pooler="session")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="listen= a URL or Engine is for PostgreSQL"):
        JobQueue(offline_jobs.session_factory, listen="postgresql+psycopg://h/db")


_ = Base  # the engine fixture creates the test tables from this metadata
