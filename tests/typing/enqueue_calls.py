"""Calls of ``task.enqueue`` that type checkers must accept, and calls they must refuse:
each refused line ends in ``# refused: <mypy error code>``. tests/unit/test_typed_enqueue.py
runs mypy --strict on this file and compares; the project's own mypy run excludes it. Never
imported or run."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import Session as SQLModelSession

from sqljobs import JobContext, JobQueue, Secret
from sqljobs.fastapi import AsyncEnqueuer, Enqueuer

jobs = JobQueue(sessionmaker(create_engine("sqlite://")))


@jobs.task
def plain(user_id: int, note: str = "") -> None: ...


@jobs.task(queue="mail", max_attempts=3)
def with_session(session: Session, user_id: int) -> int:
    return user_id


@jobs.task
def with_context(ctx: JobContext, user_id: int) -> None: ...


@jobs.task
def with_both(session: Session, ctx: JobContext, *, user_id: int) -> None: ...


@jobs.task
def context_first(ctx: JobContext, session: Session, user_id: int) -> None: ...


@jobs.task
def with_sqlmodel(session: SQLModelSession, name: str) -> None: ...


@jobs.task
async def asynchronous(session: AsyncSession, user_id: int) -> str:
    return str(user_id)


@jobs.task
async def async_plain(user_id: int) -> None: ...


@jobs.task
def secret(password: Secret[str]) -> None: ...


def calls(db: Session, enqueue: Enqueuer) -> None:
    plain.enqueue(user_id=1)
    plain.enqueue(db, user_id=1, note="hi")
    plain.enqueue(db, 1)
    with_session.enqueue(db, user_id=1)
    with_context.enqueue(db, user_id=1)
    with_both.enqueue(db, user_id=1)
    context_first.enqueue(db, user_id=1)
    with_sqlmodel.enqueue(db, name="Deadpond")
    secret.enqueue(password=Secret("hunter2"))
    plain.configure(delay=60, priority=-1).enqueue(db, user_id=1)
    plain.configure(queue="other").configure(run_at=None).enqueue(user_id=1)
    jobs.enqueue_many(db, [plain.configure(delay=5).prepare(user_id=i) for i in range(3)])
    enqueue(plain, user_id=1)
    enqueue(plain.configure(delay=60), user_id=1)

    plain.enqueue(db, user=1)  # refused: call-arg
    plain.enqueue(db, user_id="1")  # refused: arg-type
    plain.enqueue(db)  # refused: call-arg
    plain.enqueue(db, 1, "a", 3)  # refused: call-arg
    with_session.enqueue(db, session=db, user_id=1)  # refused: call-arg
    with_context.enqueue(db, ctx=None, user_id=1)  # refused: call-arg
    with_both.enqueue(db, 1)  # refused: call-arg
    with_sqlmodel.enqueue(db, name=3)  # refused: arg-type
    secret.enqueue(password=3)  # refused: arg-type
    plain.configure(delay=60).enqueue(db, user_id="1")  # refused: arg-type
    plain.configure(dely=60)  # refused: call-arg
    plain.configure(priority="high")  # refused: arg-type
    enqueue(plain, user="1")  # refused: call-arg


async def async_calls(db: AsyncSession, enqueue: AsyncEnqueuer) -> None:
    await asynchronous.enqueue_async(db, user_id=1)
    await async_plain.enqueue_async(db, user_id=1)
    await enqueue(async_plain, user_id=1)
    await asynchronous.configure(delay=1).enqueue_async(db, user_id=1)

    await asynchronous.enqueue_async(db, user_id="1")  # refused: arg-type
    await async_plain.enqueue_async(db, id=1)  # refused: call-arg
    await enqueue(asynchronous, user_id=None)  # refused: arg-type
