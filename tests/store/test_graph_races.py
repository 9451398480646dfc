"""Job graphs at their edges: a dependency finishing while its dependent is inserted, a huge
result, a parent pruned before its dependent runs, the housekeeping of pruned graphs."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobQueue, JobState, events
from sqljobs.schema import dependencies_table, graphs_table, jobs_table
from tests.helpers import EventLog, eventually, lock_waits


@pytest.fixture
def tasks(jobs: JobQueue) -> dict[str, Any]:
    gate = threading.Event()

    @jobs.task(name="gated")
    def gated(session: Session, value: int) -> int:
        gate.wait(30)
        return value

    @jobs.task(name="double")
    def double(value: Any) -> Any:
        return value * 2

    @jobs.task(name="total")
    def total(values: list[int]) -> int:
        return sum(values)

    return {"gated": gated, "double": double, "total": total, "gate": gate}


@pytest.mark.needs("concurrent_writers")
def test_a_parent_completing_while_its_dependent_is_inserted_releases_it_after_the_commit(
    jobs: JobQueue,
    tasks: dict[str, Any],
    session_factory: sessionmaker[Session],
    engine: Engine,
    dialect: str,
) -> None:
    first = jobs.graph()
    parent = first.add(tasks["gated"], value=21)
    first.enqueue()
    started = EventLog(jobs, events.JOB_STARTED)
    runner = threading.Thread(target=lambda: jobs.drain(ids=[parent.id]))
    runner.start()
    started.wait_for(events.JOB_STARTED)

    with session_factory() as db:
        g = jobs.graph()
        child = g.add(tasks["double"], depends_on=parent.id, result_as="value")
        g.enqueue(db)  # share-locks the parent until this commits
        tasks["gate"].set()  # the parent's completion now waits for that lock
        eventually(lambda: lock_waits(engine, dialect) > 0, timeout=20)
        assert jobs.get(parent.id).state is JobState.RUNNING
        db.commit()
    runner.join(timeout=30)

    assert jobs.get(parent.id).state is JobState.COMPLETED
    released = jobs.get(child.id)
    assert (released.state, released.args) == (JobState.AVAILABLE, {"value": 21})


def test_a_huge_result_reaches_its_dependent_whole(jobs: JobQueue, tasks: dict[str, Any]) -> None:
    @jobs.task(name="big")
    def big() -> str:
        return "x" * 2_000_000

    g = jobs.graph()
    parent = g.add(big)
    child = g.add(tasks["double"], depends_on=parent, result_as="value")
    g.enqueue()
    jobs.drain()
    assert len(jobs.get(child.id).result) == 4_000_000


def test_a_parent_pruned_before_its_fan_in_runs_still_hands_on_its_result(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    tasks["gate"].set()
    g = jobs.graph()
    early = g.add(tasks["double"], value=5)
    late = g.add(tasks["gated"], value=1)
    fan_in = g.add(tasks["total"], depends_on=[early, late], results_as="values")
    g.enqueue()
    jobs.drain(ids=[early.id])
    eventually(lambda: jobs.prune(older_than=0) == 1)

    jobs.drain()
    assert jobs.get(fan_in.id).result == 11


def test_pruning_a_whole_graph_removes_its_dependency_and_graph_rows(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    g = jobs.graph()
    a = g.add(tasks["double"], value=1)
    g.add(tasks["double"], depends_on=a, result_as="value")
    g.enqueue()
    jobs.drain()
    eventually(lambda: jobs.prune(older_than=0) == 2)

    with jobs.engine.connect() as conn:
        left = [
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (dependencies_table, graphs_table)
        ]
    assert left == [0, 0]


def test_a_dependency_deleted_before_it_finished_cancels_its_dependents(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    earlier = tasks["double"].enqueue(value=1)
    g = jobs.graph()
    child = g.add(tasks["double"], depends_on=earlier, result_as="value")
    g.enqueue()
    jobs.store.delete_job(earlier)

    assert jobs.store.settle_finished() == 1
    cancelled = jobs.get(child.id)
    assert cancelled.state is JobState.CANCELLED
    assert f"job {earlier}, which this job depends on, was deleted" in cancelled.errors[-1].message


def test_a_graph_job_an_older_worker_completed_is_settled_by_the_sweep(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    g = jobs.graph()
    parent = g.add(tasks["double"], value=4)
    child = g.add(tasks["double"], depends_on=parent, result_as="value")
    g.enqueue()
    # What a worker from before graphs does: complete the row, nothing else.
    with jobs.engine.begin() as conn:
        conn.execute(
            update(jobs_table)
            .where(jobs_table.c.id == parent.id)
            .values(state=JobState.COMPLETED.value, result=8)
        )
    assert jobs.get(child.id).state is JobState.BLOCKED

    assert jobs.store.settle_finished() == 1
    assert jobs.store.settle_finished() == 0
    jobs.drain()
    assert jobs.get(child.id).result == 16
