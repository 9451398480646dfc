"""Mapping what a task raised to an outcome, with no database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from sqljobs import Backoff, Cancel, JobQueue, JobState, Retry, Snooze
from sqljobs.exceptions import InvalidArguments
from sqljobs.jobs import Job
from sqljobs.worker._executor import map_exception
from sqljobs.worker._outcomes import Cancelled, Failed, Snoozed

NOW = datetime.now(timezone.utc)


def make_job(attempt: int, max_attempts: int = 3) -> Job:
    return Job(
        id=1,
        task="t",
        queue="default",
        args={},
        state=JobState.RUNNING,
        priority=0,
        attempt=attempt,
        max_attempts=max_attempts,
        run_at=NOW,
        created_at=NOW,
    )


jobs = JobQueue(sessionmaker(create_engine("sqlite://")))


@jobs.task(max_attempts=3, backoff=Backoff(base=10, jitter=0))
def task() -> None:
    pass


def test_errors_retry_with_backoff_until_the_last_attempt() -> None:
    now = datetime.now(timezone.utc)
    first = map_exception(make_job(1), task, ValueError("boom"))
    assert isinstance(first, Failed) and first.retry_at is not None
    assert timedelta(seconds=10) <= first.retry_at - now < timedelta(seconds=11)
    assert first.error.type == "ValueError" and first.error.message == "boom"
    assert "ValueError: boom" in first.error.traceback
    last = map_exception(make_job(3), task, ValueError("boom"))
    assert isinstance(last, Failed) and last.retry_at is None


def test_retry_with_delay_and_control_flow() -> None:
    now = datetime.now(timezone.utc)
    retry = map_exception(make_job(1), task, Retry(delay=60))
    assert isinstance(retry, Failed) and retry.retry_at is not None
    assert timedelta(seconds=60) <= retry.retry_at - now < timedelta(seconds=61)
    assert isinstance(map_exception(make_job(1), task, Snooze(5)), Snoozed)
    cancelled = map_exception(make_job(1), task, Cancel("not needed"))
    assert isinstance(cancelled, Cancelled) and cancelled.error.message == "not needed"


def test_invalid_arguments_are_discarded_at_once() -> None:
    outcome = map_exception(make_job(1), task, InvalidArguments("bad"))
    assert isinstance(outcome, Failed) and outcome.retry_at is None


def test_base_exceptions_are_recorded_like_errors() -> None:
    outcome = map_exception(make_job(1), task, SystemExit(3))
    assert isinstance(outcome, Failed) and outcome.error.type == "SystemExit"
