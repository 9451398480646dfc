"""Issue 12, cases 11 and 18b: the job's session while its task runs.

Case 11: an enqueue without a session inside a task that takes one joins the job's session
(on SQLite it waited minutes for the write lock the job held, then failed). Case 18b: a task
that commits or begins the job's session is discarded with JobSessionMisused on every
database (SQLite discarded it, PostgreSQL and MariaDB committed it separately).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobQueue, JobState, events
from sqljobs.aio import async_url
from tests.helpers import EventLog, add_counters, counter_total, increment

# -- case 11: enqueue without the session inside a sessioned task -----------------------------


def test_enqueue_without_session_in_a_sessioned_task_joins_the_jobs_session(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task
    def child(n: int) -> None: ...

    @jobs.task(max_attempts=1)
    def parent(session: Session, n: int, fail: bool) -> None:
        increment(session)
        child.enqueue(n=n)  # no session=session
        if fail:
            raise RuntimeError("parent fails after enqueuing")

    add_counters(session_factory)
    log = EventLog(jobs, events.JOB_ENQUEUED)
    good = parent.enqueue(n=1, fail=False)
    bad = parent.enqueue(n=2, fail=True)

    result = jobs.drain(ids=[good, bad])

    assert result.completed == [good]
    assert jobs.get(bad).state is JobState.DISCARDED
    assert "RuntimeError" in jobs.get(bad).errors[-1].type
    children = jobs.list_jobs(task=child.name)
    assert [job.args for job in children] == [{"n": 1}]  # the failed parent left no child
    assert counter_total(session_factory) == 1
    reported = [row.args for data in log.matching(events.JOB_ENQUEUED) for row in data["new_jobs"]]
    assert {"n": 1} in reported and {"n": 2, "fail": True} in reported
    assert {"n": 2} not in reported


def test_enqueue_without_session_in_a_plain_task_commits_on_its_own(jobs: JobQueue) -> None:
    @jobs.task
    def child(n: int) -> None: ...

    @jobs.task(max_attempts=1)
    def plain(n: int) -> None:
        child.enqueue(n=n)
        raise RuntimeError("fails after enqueuing")

    job_id = plain.enqueue(n=1)
    jobs.drain(ids=[job_id])
    assert jobs.get(job_id).state is JobState.DISCARDED
    assert [job.args for job in jobs.list_jobs(task=child.name)] == [{"n": 1}]


@pytest.fixture
def ajobs(
    session_factory: sessionmaker[Session], db_url: str, engine: Engine
) -> Iterator[JobQueue]:
    async_engine: AsyncEngine = create_async_engine(async_url(db_url))
    queue = JobQueue(
        session_factory,
        async_session_factory=async_sessionmaker(async_engine, expire_on_commit=False),
    )
    queue.create_schema()
    yield queue
    queue.close()


def test_sync_enqueue_without_session_in_an_async_sessioned_task_is_refused(
    ajobs: JobQueue,
) -> None:
    @ajobs.task
    def child(n: int) -> None: ...

    @ajobs.task(max_attempts=1)
    async def parent(session: AsyncSession, n: int) -> None:
        child.enqueue(n=n)

    @ajobs.task(max_attempts=1)
    async def proper(session: AsyncSession, n: int) -> None:
        await child.enqueue_async(session, n=n)

    refused = parent.enqueue(n=1)
    fine = proper.enqueue(n=2)
    ajobs.drain(ids=[refused, fine])

    error = ajobs.get(refused).errors[-1]
    assert error.type == "sqljobs.exceptions.ConfigurationError"
    assert "enqueue_async(session" in error.message
    assert ajobs.get(fine).state is JobState.COMPLETED
    assert [job.args for job in ajobs.list_jobs(task=child.name)] == [{"n": 2}]


# -- case 18b: a task that commits or begins the job's session --------------------------------


def test_a_task_that_commits_the_jobs_session_is_discarded(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task(max_attempts=3)
    def commits(session: Session) -> None:
        increment(session)
        session.commit()
        increment(session)  # after the commit: rolled back with the attempt

    add_counters(session_factory)
    job_id = commits.enqueue()
    jobs.drain(ids=[job_id])

    job = jobs.get(job_id)
    assert job.state is JobState.DISCARDED and job.attempt == 1
    assert job.errors[-1].type == "sqljobs.exceptions.JobSessionMisused"
    assert "committed the job's session" in job.errors[-1].message
    assert counter_total(session_factory) == 1  # the part before the commit stays, once


def test_a_task_that_begins_the_jobs_session_is_discarded(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task(max_attempts=3)
    def begins(session: Session) -> None:
        with session.begin():
            increment(session)

    add_counters(session_factory)
    job_id = begins.enqueue()
    jobs.drain(ids=[job_id])

    job = jobs.get(job_id)
    assert job.state is JobState.DISCARDED and job.attempt == 1
    assert job.errors[-1].type == "sqljobs.exceptions.JobSessionMisused"
    assert "session.begin()" in job.errors[-1].message
    assert counter_total(session_factory) == 0


def test_savepoints_and_flushes_in_a_task_still_commit_with_the_job(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task
    def careful(session: Session) -> None:
        with session.begin_nested():
            increment(session)
        dropped = session.begin_nested()
        increment(session)
        dropped.rollback()
        session.flush()

    add_counters(session_factory)
    job_id = careful.enqueue()
    assert jobs.drain(ids=[job_id]).completed == [job_id]
    assert counter_total(session_factory) == 1


def test_an_async_task_that_commits_the_jobs_session_is_discarded(ajobs: JobQueue) -> None:
    @ajobs.task(max_attempts=3)
    async def commits(session: AsyncSession) -> Any:
        await session.commit()

    job_id = commits.enqueue()
    ajobs.drain(ids=[job_id])
    job = ajobs.get(job_id)
    assert job.state is JobState.DISCARDED and job.attempt == 1
    assert job.errors[-1].type == "sqljobs.exceptions.JobSessionMisused"
