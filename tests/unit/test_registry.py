from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import ConfigurationError, JobQueue, TaskNotRegistered
from sqljobs.exceptions import TaskAlreadyRegistered


@pytest.fixture
def jobs() -> JobQueue:
    return JobQueue(sessionmaker(create_engine("sqlite://")))


def test_task_options_and_session_detection(jobs: JobQueue) -> None:
    @jobs.task(queue="mail", priority=-1, max_attempts=3, timeout=5)
    def send(session: Session, user_id: int) -> None:
        pass

    @jobs.task
    def plain(x: int) -> int:
        return x * 2

    assert send.name.endswith("<locals>.send")
    assert (send.queue, send.priority, send.max_attempts, send.timeout) == ("mail", -1, 3, 5.0)
    assert send.wants_session and not plain.wants_session
    assert plain(4) == 8
    assert jobs.registry.queues() == ["default", "mail"]


def test_prepare_computes_run_at_from_delay(jobs: JobQueue) -> None:
    @jobs.task
    def t(x: int) -> None:
        pass

    before = datetime.now(timezone.utc)
    job = t.prepare(x=1, delay=timedelta(minutes=5))
    assert job.run_at is not None and job.run_at - before >= timedelta(minutes=5)
    with pytest.raises(ValueError, match="either delay= or run_at="):
        t.prepare(x=1, delay=1, run_at=before)
    with pytest.raises(ValueError, match="timezone-aware"):
        t.prepare(x=1, run_at=datetime(2030, 1, 1))


def test_parameters_named_like_enqueue_options_are_refused(jobs: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="clash with enqueue options"):

        @jobs.task
        def bad(delay: int) -> None:
            pass


def test_duplicate_names_are_refused(jobs: JobQueue) -> None:
    @jobs.task(name="same")
    def one() -> None:
        pass

    with pytest.raises(TaskAlreadyRegistered):

        @jobs.task(name="same")
        def two() -> None:
            pass


def test_unknown_task_lookup_says_what_to_do(jobs: JobQueue) -> None:
    with pytest.raises(TaskNotRegistered, match="import the module"):
        jobs.registry["nope"]


def test_async_task_with_session_needs_an_async_factory(jobs: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="async_session_factory"):

        @jobs.task
        async def needs(session: object) -> None:
            await asyncio.sleep(0)


def test_jobqueue_needs_a_bound_sessionmaker() -> None:
    with pytest.raises(ConfigurationError, match="not bound to an Engine"):
        JobQueue(sessionmaker())
    with pytest.raises(ConfigurationError, match="sessionmaker"):
        JobQueue(object())  # type: ignore[arg-type]
