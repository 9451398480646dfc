"""Job graphs, run with ``drain()``: chains, groups, fan-ins, dependencies on earlier jobs,
the failure policies, cancelling a graph, and an operator's retry inside a graph."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

import sqljobs
from sqljobs import GraphError, JobQueue, JobState
from sqljobs.exceptions import ArgumentsDoNotFit, StoreError


@pytest.fixture
def tasks(jobs: JobQueue) -> dict[str, Any]:
    seen: list[tuple[str, Any]] = []

    @jobs.task(name="number")
    def number(value: int) -> int:
        seen.append(("number", value))
        return value

    @jobs.task(name="double")
    def double(value: int) -> int:
        seen.append(("double", value))
        return value * 2

    @jobs.task(name="total")
    def total(values: list[Any], plus: int = 0) -> int:
        seen.append(("total", values))
        return sum(v or 0 for v in values) + plus

    @jobs.task(name="fails", max_attempts=1)
    def fails() -> None:
        raise RuntimeError("boom")

    return {"number": number, "double": double, "total": total, "fails": fails, "seen": seen}


def test_a_chain_runs_in_order_and_hands_each_result_on(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    g = jobs.graph()
    a = g.add(tasks["number"], value=3)
    b = g.add(tasks["double"], depends_on=a, result_as="value")
    c = g.add(tasks["double"], depends_on=b, result_as="value")
    graph_id = g.enqueue()

    assert jobs.get(b.id).state is JobState.BLOCKED
    jobs.drain()
    assert tasks["seen"] == [("number", 3), ("double", 3), ("double", 6)]
    assert jobs.get(c.id).result == 12
    snapshot = jobs.get_graph(graph_id)
    assert [j.id for j in snapshot.jobs] == [a.id, b.id, c.id]
    assert snapshot.state == "completed"
    assert snapshot.parents_of(c.id) == [b.id]


def test_a_fan_in_runs_once_after_its_group_with_every_result_in_order(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    g = jobs.graph()
    parts = g.group(tasks["number"], [{"value": v} for v in (5, 1, 4)])
    fan_in = g.add(tasks["total"], depends_on=parts, results_as="values", plus=100)
    g.enqueue()

    jobs.drain()
    assert jobs.get(fan_in.id).result == 110
    assert [s for s in tasks["seen"] if s[0] == "total"] == [("total", [5, 1, 4])]
    assert jobs.get(fan_in.id).args == {"plus": 100, "values": [5, 1, 4]}


def test_a_graph_enqueued_in_a_rolled_back_transaction_leaves_no_row(
    jobs: JobQueue, tasks: dict[str, Any], session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as db:
        g = jobs.graph()
        a = g.add(tasks["number"], value=1)
        g.add(tasks["double"], depends_on=a, result_as="value")
        graph_id = g.enqueue(db)
        db.rollback()
    assert jobs.counts() == {}
    with pytest.raises(sqljobs.GraphNotFound):
        jobs.get_graph(graph_id)


def test_a_graph_enqueued_in_a_committed_transaction_exists_with_it(
    jobs: JobQueue, tasks: dict[str, Any], session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as db:
        g = jobs.graph(name="order 17")
        a = g.add(tasks["number"], value=1)
        g.add(tasks["double"], depends_on=a, result_as="value")
        graph_id = g.enqueue(db)
        db.commit()
    snapshot = jobs.get_graph(graph_id)
    assert snapshot.name == "order 17"
    assert [j.state for j in snapshot.jobs] == [JobState.AVAILABLE, JobState.BLOCKED]


def test_a_failed_job_cancels_its_dependents_and_theirs_under_cancel(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    g = jobs.graph(on_failure="cancel")
    ok = g.add(tasks["number"], value=1)
    bad = g.add(tasks["fails"], depends_on=ok)
    after = g.add(tasks["number"], depends_on=bad, value=2)
    last = g.add(tasks["total"], depends_on=[after, ok], results_as="values")
    g.enqueue()

    jobs.drain()
    assert jobs.get(bad.id).state is JobState.DISCARDED
    assert [jobs.get(n.id).state for n in (after, last)] == [JobState.CANCELLED] * 2
    assert jobs.get(after.id).last_error.type == "DependencyFailed"  # type: ignore[union-attr]
    assert f"job {bad.id}" in jobs.get(after.id).last_error.message  # type: ignore[union-attr]
    assert [s for s in tasks["seen"] if s[0] != "number" or s[1] != 1] == []


def test_a_failed_job_lets_its_dependents_run_with_none_under_continue(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    g = jobs.graph(on_failure="continue")
    ok = g.add(tasks["number"], value=7)
    bad = g.add(tasks["fails"])
    last = g.add(tasks["total"], depends_on=[ok, bad], results_as="values")
    g.enqueue()

    jobs.drain()
    assert jobs.get(last.id).state is JobState.COMPLETED
    assert jobs.get(last.id).args == {"values": [7, None]}


def test_cancelling_a_graph_cancels_its_waiting_jobs_and_leaves_finished_ones(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    g = jobs.graph()
    a = g.add(tasks["number"], value=1)
    b = g.add(tasks["double"], depends_on=a, result_as="value")
    c = g.add(tasks["double"], depends_on=b, result_as="value")
    graph_id = g.enqueue()
    jobs.drain(ids=[a.id])

    cancelled = jobs.cancel_graph(graph_id)
    assert cancelled == [b.id, c.id]
    assert [j.state for j in jobs.get_graph(graph_id).jobs] == [
        JobState.COMPLETED,
        JobState.CANCELLED,
        JobState.CANCELLED,
    ]
    assert jobs.drain().total == 0


def test_a_job_depending_on_an_earlier_job_waits_for_it(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    earlier = tasks["number"].enqueue(value=21)
    g = jobs.graph()
    later = g.add(tasks["double"], depends_on=earlier, result_as="value")
    g.enqueue()
    assert jobs.get(later.id).state is JobState.BLOCKED

    jobs.drain(ids=[earlier])
    # The earlier job is in no graph: the maintenance sweep settles what it left.
    assert jobs.store.settle_finished() == 1
    jobs.drain()
    assert jobs.get(later.id).result == 42


def test_depending_on_a_job_that_completed_already_runs_at_once_with_its_result(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    first = jobs.graph()
    done = first.add(tasks["number"], value=4)
    first.enqueue()
    jobs.drain()

    g = jobs.graph()
    later = g.add(tasks["double"], depends_on=done, result_as="value")
    g.enqueue()
    assert jobs.get(later.id).state is JobState.AVAILABLE
    jobs.drain()
    assert jobs.get(later.id).result == 8


def test_depending_on_a_job_that_does_not_exist_is_refused_and_inserts_nothing(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    g = jobs.graph()
    g.add(tasks["number"], depends_on=987654, value=1)
    with pytest.raises(GraphError, match="987654, which do not exist"):
        g.enqueue()
    assert jobs.counts() == {}


def test_retrying_a_discarded_parent_does_not_revive_its_cancelled_dependents(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    g = jobs.graph()
    bad = g.add(tasks["fails"])
    after = g.add(tasks["number"], depends_on=bad, value=5)
    g.enqueue()
    jobs.drain()
    assert jobs.get(after.id).state is JobState.CANCELLED

    with pytest.raises(StoreError, match=f"retry job {bad.id} first"):
        jobs.retry(after.id)
    jobs.retry(bad.id)
    assert jobs.get(after.id).state is JobState.CANCELLED
    # Retried once its dependency is live again, it waits for it, and follows its outcome.
    jobs.retry(after.id)
    assert jobs.get(after.id).state is JobState.BLOCKED
    jobs.drain()
    assert jobs.get(after.id).state is JobState.CANCELLED
    assert tasks["seen"] == []


def test_a_completed_parent_retried_twice_counts_its_dependent_down_once(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    g = jobs.graph()
    a = g.add(tasks["number"], value=1)
    slow = g.add(tasks["number"], value=2)
    last = g.add(tasks["total"], depends_on=[a, slow], results_as="values")
    g.enqueue()
    jobs.drain(ids=[a.id])
    jobs.retry(a.id)
    jobs.drain(ids=[a.id])

    assert jobs.get(last.id).state is JobState.BLOCKED
    jobs.drain()
    assert jobs.get(last.id).result == 3


def test_a_unique_node_whose_key_is_held_joins_the_graph_as_that_job(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    @jobs.task(name="unique_number", unique=sqljobs.Unique(by_args=True))
    def unique_number(value: int) -> int:
        return value

    held = unique_number.enqueue(value=9)
    g = jobs.graph()
    same = g.add(unique_number, value=9)
    after = g.add(tasks["double"], depends_on=same, result_as="value")
    g.enqueue()
    assert same.id == held
    jobs.drain(ids=[held])
    jobs.store.settle_finished()
    jobs.drain()
    assert jobs.get(after.id).result == 18


def test_priorities_order_the_jobs_a_release_makes_available(
    jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    g = jobs.graph()
    root = g.add(tasks["number"], value=0)
    g.add(tasks["number"], depends_on=root, value=1, priority=5)
    g.add(tasks["number"], depends_on=root, value=2, priority=-5)
    g.enqueue()
    jobs.drain()
    assert [s[1] for s in tasks["seen"]] == [0, 2, 1]


def test_graph_building_refuses_what_cannot_work(jobs: JobQueue, tasks: dict[str, Any]) -> None:
    g = jobs.graph()
    a = g.add(tasks["number"], value=1)
    b = g.add(tasks["number"], value=2)
    with pytest.raises(GraphError, match="use results_as='values' for a list"):
        g.add(tasks["total"], depends_on=[a, b], result_as="values")
    with pytest.raises(GraphError, match="the same job twice"):
        g.add(tasks["total"], depends_on=[a, a], results_as="values")
    with pytest.raises(ArgumentsDoNotFit, match="has no parameter 'nope'"):
        g.add(tasks["number"], depends_on=a, result_as="nope")
    with pytest.raises(ArgumentsDoNotFit, match="do not pass it too"):
        g.add(tasks["double"], depends_on=a, result_as="value", value=3)
    with pytest.raises(ArgumentsDoNotFit, match="missing required argument"):
        g.add(tasks["double"], depends_on=a)
    with pytest.raises(GraphError, match="not a policy"):
        jobs.graph(on_failure="ignore")
    other = jobs.graph()
    foreign = other.add(tasks["number"], value=1)
    with pytest.raises(GraphError, match="another graph that was not enqueued"):
        g.add(tasks["double"], depends_on=foreign, result_as="value")
    with pytest.raises(GraphError, match="has no jobs"):
        jobs.graph().enqueue()


def test_in_inline_mode_a_graph_runs_to_its_end_after_the_commit(
    jobs: JobQueue, tasks: dict[str, Any], session_factory: sessionmaker[Session]
) -> None:
    from sqljobs import testing

    with testing.inline(jobs), session_factory() as db:
        g = jobs.graph()
        parts = g.group(tasks["number"], [{"value": v} for v in (1, 2)])
        fan_in = g.add(tasks["total"], depends_on=parts, results_as="values")
        g.enqueue(db)
        assert tasks["seen"] == []  # nothing before the commit
        db.commit()
    assert jobs.get(fan_in.id).result == 3
