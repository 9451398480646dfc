"""Pruning never waits for a job row: it finds what to delete with plain reads and deletes
by key. (A ``DELETE ... WHERE NOT EXISTS (SELECT ... FROM sqljobs_jobs)`` share-locked on
MariaDB every job row its subquery found, and deadlocked with a parent's completion that
held an edge and waited for its dependent's row.)"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import Engine, delete, select, update

from sqljobs import JobQueue, JobState, KeyLimit
from sqljobs.schema import dependencies_table, jobs_table
from tests.helpers import eventually, lock_waits

pytestmark = pytest.mark.dialects(
    "postgresql", "mariadb", reason="SQLite has one writer: a held row lock holds the database"
)


@contextmanager
def row_locked(engine: Engine, job_id: int) -> Iterator[None]:
    """Hold ``job_id``'s row as a parent's finishing transaction holds its dependent's."""
    with engine.connect() as conn, conn.begin():
        conn.execute(select(jobs_table.c.id).where(jobs_table.c.id == job_id).with_for_update())
        yield


@contextmanager
def completing(engine: Engine, job_id: int) -> Iterator[None]:
    """Hold ``job_id``'s row, and its index entries, as its own completion does."""
    with engine.connect() as conn, conn.begin():
        conn.execute(
            update(jobs_table)
            .where(jobs_table.c.id == job_id)
            .values(state=JobState.COMPLETED.value)
        )
        yield


def finishes_without_waiting(engine: Engine, dialect: str, prune: Callable[[], int]) -> int:
    """Run ``prune`` in a thread; fail if it waits for a row lock instead of finishing."""
    outcome: list[int] = []
    thread = threading.Thread(target=lambda: outcome.append(prune()), daemon=True)
    thread.start()
    eventually(lambda: bool(outcome) or lock_waits(engine, dialect) > 0, timeout=30)
    assert outcome, "pruning waits for a job row another transaction holds"
    thread.join()
    return outcome[0]


def test_pruning_graph_rows_passes_a_locked_dependent(
    jobs: JobQueue, engine: Engine, dialect: str
) -> None:
    @jobs.task(name="step")
    def step() -> None:
        pass

    gone = jobs.graph(name="gone")
    gone.add(step, depends_on=gone.add(step))
    gone_id = gone.enqueue()
    live = jobs.graph(name="live")
    dependent = live.add(step, depends_on=live.add(step))
    live.enqueue()
    with engine.begin() as conn:  # as a prune of finished jobs leaves them
        conn.execute(delete(jobs_table).where(jobs_table.c.graph_id == gone_id))

    with row_locked(engine, dependent.id):
        deleted = finishes_without_waiting(engine, dialect, jobs.store.prune_graph_rows)

    assert deleted == 2  # the gone graph's edge and its row
    with engine.connect() as conn:
        left = conn.execute(select(dependencies_table.c.job_id)).scalars().all()
    assert left == [dependent.id]


def test_pruning_keys_passes_a_completing_job_of_a_live_key(
    jobs: JobQueue, engine: Engine, dialect: str
) -> None:
    @jobs.task(limit=KeyLimit(by_args=["key"], concurrency=1))
    def work(key: str) -> None:
        pass

    work.enqueue(key="A")
    running = work.enqueue(key="B")
    claimed = jobs.store.claim_keyed(
        worker_id="w", queues=["default"], limit=5, lease=timedelta(seconds=30), tasks=[work.name]
    )
    assert jobs.store.complete_many([(claimed[0], None)]) == {claimed[0].id}

    with completing(engine, running):  # B's job finishes, not committed yet
        deleted = finishes_without_waiting(
            engine, dialect, lambda: jobs.store.prune_keys(idle_for=timedelta(0))
        )

    assert deleted == 1  # A's key; B's stays until B's completion commits
