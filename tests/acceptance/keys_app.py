"""Worker-process app for the per-key limit tests: keyed tasks that record, as they start,
how many jobs of their own key the job table shows running (themselves included)."""

from __future__ import annotations

import os
import time

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, insert, select
from sqlalchemy.orm import sessionmaker

from sqljobs import JobContext, JobQueue, KeyLimit
from sqljobs.schema import jobs_table

engine = create_engine(os.environ["SQLJOBS_TEST_DATABASE_URL"], pool_size=12)
SessionLocal = sessionmaker(engine)
jobs = JobQueue(SessionLocal)

starts = Table(
    "test_key_starts",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", Integer, nullable=False),
    Column("key", String(50), nullable=False),
    Column("n", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("running", Integer, nullable=False),
)


def record_start(ctx: JobContext, key: str, n: int) -> None:
    """One row per start, with the running jobs of the job's key the database shows now."""
    own_key = select(jobs_table.c.flow_key).where(jobs_table.c.id == ctx.job_id)
    running = (
        select(func.count())
        .select_from(jobs_table)
        .where(jobs_table.c.flow_key == own_key.scalar_subquery())
        .where(jobs_table.c.state == "running")
    )
    with engine.begin() as conn:
        seen = conn.execute(running).scalar_one()
        conn.execute(
            insert(starts).values(job=ctx.job_id, key=key, n=n, attempt=ctx.attempt, running=seen)
        )


# No job sessions: on SQLite a session holds the write lock for the whole job, which would
# serialise the jobs and hide whether the limit lets two overlap.
@jobs.task(name="per_user", limit=KeyLimit(by_args=["user"], concurrency=1))
def per_user(ctx: JobContext, user: str, n: int) -> None:
    record_start(ctx, user, n)
    time.sleep(0.01)  # the work: long enough for another worker to claim beside it


@jobs.task(name="ordered", limit=KeyLimit(by_args=["order"], fifo=True))
def ordered(ctx: JobContext, order: str, n: int) -> None:
    record_start(ctx, order, n)


@jobs.task(name="stuck_first", limit=KeyLimit(by_args=["user"], concurrency=1))
def stuck_first(ctx: JobContext, user: str, n: int) -> None:
    record_start(ctx, user, n)
    if n == 0 and ctx.attempt == 1:
        time.sleep(600)  # the worker is killed meanwhile
