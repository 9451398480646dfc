"""Per-job logs on each database (docs/logs.md): what a task logs during an attempt, through
``ctx.logger`` and standard ``logging`` in its thread, is stored with the attempt when it
ends, capped, kept when the attempt fails or its transaction rolls back, never taken from
another thread, and deleted with its job."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import Backoff, JobContext, JobQueue, JobState, LogLimits
from sqljobs.exceptions import ConfigurationError
from sqljobs.schema import job_logs_table
from tests.helpers import add_counters, counter_total, increment

LATER = Backoff(base=600, jitter=0)
app_log = logging.getLogger("tests.app")


def lines(jobs: JobQueue, job_id: int) -> list[tuple[int, str, str, str]]:
    return [(line.attempt, line.level, line.logger, line.message) for line in jobs.logs(job_id)]


def stored_rows(jobs: JobQueue) -> int:
    with jobs.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(job_logs_table)).scalar_one())


def test_a_sync_tasks_ctx_logger_and_logging_lines_are_kept_in_order(jobs: JobQueue) -> None:
    @jobs.task
    def chatty(ctx: JobContext, n: int) -> None:
        ctx.logger.info("starting %d", n)
        app_log.warning("plain logging in the task's thread")
        ctx.logger.debug("below the kept level")

    job_id = chatty.enqueue(n=3)
    jobs.drain()
    assert lines(jobs, job_id) == [
        (1, "INFO", "sqljobs.task", "starting 3"),
        (1, "WARNING", "tests.app", "plain logging in the task's thread"),
    ]


def test_an_async_tasks_lines_are_kept_including_its_sync_steps(jobs: JobQueue) -> None:
    def sync_step() -> int:
        app_log.warning("in the step's thread")
        return 1

    @jobs.task
    async def chatty(ctx: JobContext) -> None:
        ctx.logger.info("async start")
        await ctx.astep("one", sync_step)
        app_log.error("async end")

    job_id = chatty.enqueue()
    jobs.drain()
    assert lines(jobs, job_id) == [
        (1, "INFO", "sqljobs.task", "async start"),
        (1, "WARNING", "tests.app", "in the step's thread"),
        (1, "ERROR", "tests.app", "async end"),
    ]


def test_a_failed_attempt_keeps_its_lines_and_its_rolled_back_writes_do_not(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)

    @jobs.task(max_attempts=2, backoff=LATER)
    def flaky(session: Session, ctx: JobContext) -> None:
        increment(session, 1)
        ctx.logger.info("attempt %d wrote", ctx.attempt)
        if ctx.attempt == 1:
            try:
                raise ValueError("bad data")
            except ValueError:
                ctx.logger.exception("giving up on this attempt")
                raise

    job_id = flaky.enqueue()
    jobs.drain()
    assert jobs.get(job_id).state is JobState.RETRYABLE
    assert counter_total(session_factory) == 0  # the attempt's transaction rolled back
    first = jobs.logs(job_id)
    assert [(line.attempt, line.level, line.message.splitlines()[0]) for line in first] == [
        (1, "INFO", "attempt 1 wrote"),
        (1, "ERROR", "giving up on this attempt"),
    ]
    assert "ValueError: bad data" in first[1].message  # with its traceback

    jobs.drain(include_scheduled=True)
    assert jobs.get(job_id).state is JobState.COMPLETED
    assert [(line.attempt, line.message.splitlines()[0]) for line in jobs.logs(job_id)] == [
        (1, "attempt 1 wrote"),
        (1, "giving up on this attempt"),
        (2, "attempt 2 wrote"),
    ]


def test_lines_over_the_cap_are_dropped_and_counted_in_a_last_line(
    session_factory: sessionmaker[Session],
) -> None:
    jobs = JobQueue(session_factory, job_logs=LogLimits(lines=3, bytes=10_000))
    jobs.create_schema()

    @jobs.task
    def loud(ctx: JobContext) -> None:
        for n in range(10):
            ctx.logger.info("line %d", n)

    job_id = loud.enqueue()
    jobs.drain()
    jobs.close()
    assert [message for *_, message in lines(jobs, job_id)] == [
        "line 0",
        "line 1",
        "line 2",
        "7 lines dropped (over the limit of 3 lines or 10000 bytes per attempt)",
    ]


def test_the_byte_cap_cuts_a_long_message_and_drops_what_follows(
    session_factory: sessionmaker[Session],
) -> None:
    jobs = JobQueue(session_factory, job_logs=LogLimits(lines=100, bytes=50))
    jobs.create_schema()

    @jobs.task
    def verbose(ctx: JobContext) -> None:
        ctx.logger.info("x" * 30)
        ctx.logger.info("y" * 30)
        ctx.logger.info("z")

    job_id = verbose.enqueue()
    jobs.drain()
    jobs.close()
    assert [message for *_, message in lines(jobs, job_id)] == [
        "x" * 30,
        "y" * 20,
        "1 lines dropped (over the limit of 100 lines or 50 bytes per attempt)",
    ]


def test_lines_logged_by_another_thread_while_the_task_runs_are_not_kept(
    jobs: JobQueue,
) -> None:
    @jobs.task
    def with_helper_thread(ctx: JobContext) -> None:
        ctx.logger.info("from the task")

        def helper() -> None:
            app_log.warning("from a thread the task started")
            ctx.logger.info("ctx.logger from that thread")

        thread = threading.Thread(target=helper)
        thread.start()
        thread.join()

    job_id = with_helper_thread.enqueue()
    jobs.drain()
    assert lines(jobs, job_id) == [(1, "INFO", "sqljobs.task", "from the task")]


def test_a_task_that_logs_nothing_stores_no_row_and_job_logs_none_keeps_none(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task
    def quiet() -> None:
        return None

    quiet.enqueue()
    jobs.drain()
    assert stored_rows(jobs) == 0

    silent = JobQueue(session_factory, job_logs=None)

    @silent.task
    def loud(ctx: JobContext) -> None:
        ctx.logger.warning("not kept")

    job_id = loud.enqueue()
    silent.drain()
    silent.close()
    assert jobs.get(job_id).state is JobState.COMPLETED and lines(jobs, job_id) == []


def test_a_jobs_lines_are_deleted_with_it_by_delete_prune_and_bulk_delete(
    jobs: JobQueue,
) -> None:
    @jobs.task
    def noted(ctx: JobContext) -> None:
        ctx.logger.info("kept until the job goes")

    first, second, third = (noted.enqueue() for _ in range(3))
    jobs.drain()
    assert stored_rows(jobs) == 3
    jobs.store.delete_job(first)
    assert lines(jobs, first) == [] and stored_rows(jobs) == 2
    assert jobs.prune(older_than=timedelta(0)) == 2
    assert stored_rows(jobs) == 0

    fourth = noted.enqueue()
    jobs.drain()
    assert stored_rows(jobs) == 1
    jobs.bulk("delete", task=noted.name)
    assert lines(jobs, fourth) == [] and stored_rows(jobs) == 0
    assert lines(jobs, second) == lines(jobs, third) == []


def test_job_logs_takes_log_limits_or_none(offline_jobs: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match=r"takes a sqljobs\.LogLimits or None"):
        JobQueue(offline_jobs.session_factory, job_logs=200)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"LogLimits\(lines=...\) is a positive int"):
        LogLimits(lines=0)
