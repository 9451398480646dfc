"""The app the acceptance tests run in worker subprocesses (``sqljobs worker``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import Backoff, JobContext, JobQueue
from tests.helpers import increment

engine = create_engine(os.environ["SQLJOBS_TEST_DATABASE_URL"], pool_size=12)
SessionLocal = sessionmaker(engine)
jobs = JobQueue(SessionLocal)


@jobs.task(name="bump", max_attempts=5, backoff=Backoff(base=0.05, jitter=0))
def bump(
    session: Session, ctx: JobContext, counter_id: int, hold: float = 0.0, marker: str = ""
) -> None:
    increment(session, counter_id)
    if marker:
        Path(marker).write_text(str(os.getpid()))
    if ctx.attempt == 1:  # a rescued attempt finishes at once
        time.sleep(hold)
