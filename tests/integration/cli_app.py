"""The app the CLI tests point ``--app`` / ``$SQLJOBS_APP`` at (database from the environment)."""

from __future__ import annotations

import logging
import os

from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import Backoff, JobContext, JobQueue
from tests.helpers import increment

engine = create_engine(os.environ["SQLJOBS_TEST_DATABASE_URL"], pool_size=10)
SessionLocal = sessionmaker(engine)
jobs = JobQueue(SessionLocal)
not_a_queue = "just a string"


@jobs.task(name="bump", queue="counters", max_attempts=3)
def bump(session: Session, counter_id: int = 1) -> int:
    increment(session, counter_id)
    return counter_id


@jobs.task(name="explode", queue="mail", max_attempts=1, backoff=Backoff(base=0.01, jitter=0))
def explode(message: str) -> None:
    raise RuntimeError(message)


@jobs.task(name="explode_once", queue="mail", max_attempts=1, unique=True)
def explode_once(message: str) -> None:
    raise RuntimeError(message)


def _charge(session: Session, counter_id: int) -> dict[str, int]:
    increment(session, counter_id)
    return {"charged": counter_id}


def _ship(attempt: int) -> str:
    if attempt == 1:
        raise RuntimeError("<b>courier</b> [red]down[/red]")
    return "shipped"


@jobs.task(name="stepped", max_attempts=2, backoff=Backoff(base=3600, jitter=0))
def stepped(ctx: JobContext, counter_id: int = 1) -> str:
    """Two durable steps; the second fails on the first attempt."""
    ctx.step("charge", _charge, counter_id=counter_id)
    return ctx.step("ship", _ship, attempt=ctx.attempt)


@jobs.task(name="chatty", max_attempts=2, backoff=Backoff(base=3600, jitter=0))
def chatty(ctx: JobContext, markup: str) -> None:
    """Logs through ctx.logger and plain logging; its first attempt fails."""
    ctx.logger.info("attempt %d: %s", ctx.attempt, markup)
    logging.getLogger("tests.cli_app").warning("plain logging, attempt %d", ctx.attempt)
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")


@jobs.task(name="achatty")
async def achatty(ctx: JobContext) -> None:
    ctx.logger.info("from an async task")
    logging.getLogger("tests.cli_app").error("async plain logging")
