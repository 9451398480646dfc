"""Worker-process app for the multi-process scheduling tests: a periodic task every second
and a globally limited queue whose jobs record when they ran."""

from __future__ import annotations

import os
import time

from sqlalchemy import Column, Double, Integer, MetaData, Table, create_engine, insert
from sqlalchemy.orm import sessionmaker

from sqljobs import JobQueue

engine = create_engine(os.environ["SQLJOBS_TEST_DATABASE_URL"], pool_size=12)
SessionLocal = sessionmaker(engine)
jobs = JobQueue(SessionLocal)

runs = Table(
    "test_runs",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", Integer, nullable=False),
    Column("started", Double, nullable=False),
    Column("ended", Double, nullable=False),
)


@jobs.periodic("* * * * * */1", name="tick")
def tick() -> None:
    pass


@jobs.task(name="scarce", queue="scarce")
def scarce(n: int) -> None:
    # No job session: on SQLite a session holds the write lock for the whole job, which
    # would serialise the jobs and hide whether the limit lets two overlap.
    started = time.time()
    time.sleep(0.05)
    ended = time.time()
    with engine.begin() as conn:
        conn.execute(insert(runs).values(job=n, started=started, ended=ended))
