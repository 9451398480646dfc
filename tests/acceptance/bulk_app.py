"""The app of the bulk-operation acceptance tests, run by ``sqljobs worker`` processes."""

from __future__ import annotations

import os
import time

from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobContext, JobQueue
from tests.helpers import increment

engine = create_engine(os.environ["SQLJOBS_TEST_DATABASE_URL"], pool_size=12)
SessionLocal = sessionmaker(engine)
jobs = JobQueue(SessionLocal)


@jobs.task(name="apply", max_attempts=1)
def apply(
    session: Session, ctx: JobContext, key: int, hold: float = 0.0, fail_first: bool = False
) -> None:
    """Counts one effect on counter ``key`` when it completes; the first attempt fails when
    ``fail_first`` (so the job is discarded, for a bulk retry to run it again)."""
    if fail_first and ctx.attempt == 1:
        raise RuntimeError("the first attempt fails")
    increment(session, key)
    time.sleep(hold)  # keeps jobs in flight while the bulk operation runs beside them
