"""Durable steps in ``async def`` tasks (``await ctx.astep``) on each database: an async step
gets an AsyncSession of its own, a sync step runs in a thread with a sync Session, and a
retry replays both from their stored results."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import Backoff, JobContext, JobQueue, JobState
from sqljobs.steps import StepState
from tests.helpers import add_counters, increment
from tests.worker.test_async_tasks import ajobs, async_engine, async_increment
from tests.worker.test_steps import counters

__all__ = ["ajobs", "async_engine"]  # fixtures


async def bump_async(session: AsyncSession, counter_id: int) -> int:
    await async_increment(session, counter_id)
    return counter_id


def bump_sync(session: Session, counter_id: int) -> int:
    increment(session, counter_id)
    return counter_id


def test_async_and_sync_steps_in_an_async_task_run_once_and_replay_on_retry(
    ajobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 2)
    seen: list[tuple[int, Any, Any]] = []

    @ajobs.task(max_attempts=3, backoff=Backoff(base=600, jitter=0))
    async def flow(ctx: JobContext) -> int:
        first = await ctx.astep("async", bump_async, counter_id=1)
        second = await ctx.astep("sync", bump_sync, counter_id=2)
        seen.append((ctx.attempt, first, second))
        if ctx.attempt == 1:
            raise RuntimeError("retry me")
        return int(first) + int(second)

    job_id = flow.enqueue()
    ajobs.drain()
    assert counters(session_factory) == {1: 1, 2: 1}
    ajobs.drain(include_scheduled=True)
    job = ajobs.get(job_id)
    assert job.state is JobState.COMPLETED and job.result == 3
    assert counters(session_factory) == {1: 1, 2: 1}
    assert seen == [(1, 1, 2), (2, 1, 2)]
    steps = ajobs.steps(job_id)
    assert [(s.name, s.state, s.attempts) for s in steps] == [
        ("async", StepState.COMPLETED, 1),
        ("sync", StepState.COMPLETED, 1),
    ]


def test_a_failing_async_step_rolls_back_and_records_its_error(
    ajobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 1)

    async def declined(session: AsyncSession) -> None:
        await async_increment(session, 1)
        raise ValueError("declined")

    @ajobs.task(max_attempts=1)
    async def flow(ctx: JobContext) -> None:
        await ctx.astep("charge", declined)

    job_id = flow.enqueue()
    ajobs.drain()
    assert ajobs.get(job_id).state is JobState.DISCARDED
    assert counters(session_factory) == {1: 0}
    [step] = ajobs.steps(job_id)
    assert step.state is StepState.FAILED and step.error is not None
    assert (step.error.type, step.error.message) == ("ValueError", "declined")


def test_ctx_step_in_an_async_task_is_refused_with_what_to_call_instead(
    ajobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 1)

    @ajobs.task
    async def flow(ctx: JobContext) -> None:
        ctx.step("blocking", bump_sync, counter_id=1)

    job_id = flow.enqueue()
    ajobs.drain()
    job = ajobs.get(job_id)
    assert job.state is JobState.DISCARDED
    assert "use await ctx.astep('blocking', ...)" in job.errors[-1].message
    assert counters(session_factory) == {1: 0}
