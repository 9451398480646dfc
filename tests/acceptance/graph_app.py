"""The app the job-graph acceptance tests run in worker subprocesses (``sqljobs worker``)."""

from __future__ import annotations

import os

from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobQueue
from tests.helpers import increment

engine = create_engine(os.environ["SQLJOBS_TEST_DATABASE_URL"], pool_size=12)
SessionLocal = sessionmaker(engine)
jobs = JobQueue(SessionLocal)

#: Counters: parts increment 1..8, the pairs' fan-ins 9, the big fan-in 10.
PAIR_COUNTER, BIG_COUNTER = 9, 10


@jobs.task(name="part", max_attempts=20)
def part(session: Session, index: int) -> int:
    increment(session, 1 + index % 8)
    return index


@jobs.task(name="gather", max_attempts=20)
def gather(session: Session, results: list[int], counter_id: int) -> int:
    increment(session, counter_id)
    return sum(results)
