"""Settling dependencies: what a finished job does to the jobs of a graph that wait for it.

:func:`settle` runs inside the transaction that finishes the parents (the task's session for
a completion, the store's own for a failure, a cancel or the maintenance sweep), so a
dependent is released, counted down or cancelled exactly when its parent's outcome commits.

The rules it keeps, on every database:

- An edge (dependent, parent) is *resolved* once: the edges are read with a locking read,
  which sees the latest committed rows even in a REPEATABLE READ transaction (MariaDB's
  default), and only unresolved ones are flipped. A parent that completes twice (an operator
  retried it) never counts down its dependents twice.
- Each dependent's row is locked (in id order, so two transactions never wait on each other
  in a cycle) before its count of unfinished dependencies is read and written: two parents
  finishing at once on two workers serialise on that row, and exactly one of them sees the
  count reach zero and releases the dependent.
- A released dependent receives its parents' results, copied onto the edges when each parent
  finished: pruning a parent later changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, bindparam, case, false, select, true, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from .._utils import utcnow
from ..exceptions import StoreError
from ..jobs import JobError, JobState
from ..schema import dependencies_table, graphs_table, jobs_table
from . import _statements
from ._base import _erasing, _errors_with, row_to_job
from ._dialects import db_now

_deps = dependencies_table
_jobs = jobs_table

#: A graph's failure policies: cancel the dependents of a failed job, or let them run.
ON_FAILURE = ("cancel", "continue")


@dataclass(frozen=True, slots=True)
class Finished:
    """A parent's outcome as its finishing transaction stores it."""

    job_id: int
    #: The job's state ("completed", "discarded", "cancelled"), or "deleted" for a missing row.
    outcome: str
    result: Any = None


_RESOLVE = (
    update(_deps)
    .where(_deps.c.job_id == bindparam("b_job", type_=Integer))
    .where(_deps.c.parent_id == bindparam("b_parent", type_=Integer))
    .values(
        resolved=True,
        outcome=bindparam("b_outcome", type_=String),
        result=bindparam("b_result", type_=_deps.c.result.type),
    )
)
_COUNT_DOWN = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_id", type_=Integer))
    .values(waiting_for=bindparam("b_left", type_=Integer))
)
_RELEASE = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_id", type_=Integer))
    .where(_jobs.c.state == JobState.BLOCKED.value)
    .values(
        state=case(
            (_jobs.c.run_at <= db_now(), JobState.AVAILABLE.value),
            else_=JobState.SCHEDULED.value,
        ),
        waiting_for=0,
    )
)
_RELEASE_WITH_ARGS = _RELEASE.values(args=bindparam("b_args", type_=_jobs.c.args.type))


def settle(
    conn: Session | Connection, finished: Iterable[Finished], *, notify_channel: str | None
) -> None:
    """Resolve the edges of ``finished`` parents and act on their dependents: count down,
    release (with the parents' results) or, under the graph's ``cancel`` policy, cancel them
    and, in turn, theirs. ``notify_channel`` (PostgreSQL): notify the queues of released jobs."""
    pending = list(finished)
    while pending:
        pending = _settle_once(conn, pending, notify_channel)


def _settle_once(
    conn: Session | Connection, finished: Sequence[Finished], notify_channel: str | None
) -> list[Finished]:
    by_parent = {f.job_id: f for f in finished}
    edges = conn.execute(
        select(_deps.c.job_id, _deps.c.parent_id, _deps.c.arg)
        .where(_deps.c.parent_id.in_(sorted(by_parent)))
        .where(_deps.c.resolved == false())
        .order_by(_deps.c.job_id, _deps.c.parent_id)
        .with_for_update()
    ).all()
    if not edges:
        return []
    conn.execute(
        _RESOLVE,
        [
            {
                "b_job": edge.job_id,
                "b_parent": edge.parent_id,
                "b_outcome": by_parent[edge.parent_id].outcome,
                # Only an edge that hands the result on keeps a copy of it.
                "b_result": by_parent[edge.parent_id].result if edge.arg is not None else None,
            }
            for edge in edges
        ],
    )
    flipped: dict[int, list[Finished]] = {}
    for edge in edges:
        flipped.setdefault(int(edge.job_id), []).append(by_parent[edge.parent_id])
    rows = conn.execute(
        select(_jobs).where(_jobs.c.id.in_(sorted(flipped))).order_by(_jobs.c.id).with_for_update()
    ).all()
    dependents = [row_to_job(row) for row in rows]
    waiting = {int(row.id): int(row.waiting_for or 0) for row in rows}
    # The policies matter only when a parent failed: a plain completion skips the read.
    any_failed = any(f.outcome != JobState.COMPLETED.value for f in finished)
    graph_ids = {j.graph_id for j in dependents if j.graph_id is not None}
    policies = _policies(conn, graph_ids) if any_failed else {}

    cancelled: list[Finished] = []
    counts: list[dict[str, Any]] = []
    released: list[int] = []
    for job in dependents:
        if job.state is not JobState.BLOCKED:
            continue  # cancelled or retried by an operator meanwhile: nothing waits
        parents = flipped[job.id]
        failed = [p for p in parents if p.outcome != JobState.COMPLETED.value]
        if failed and policies.get(job.graph_id, "cancel") == "cancel":
            _cancel(conn, job, failed[0])
            cancelled.append(Finished(job.id, JobState.CANCELLED.value))
            continue
        left = waiting[job.id] - len(parents)
        if left > 0:
            counts.append({"b_id": job.id, "b_left": left})
        else:
            released.append(job.id)
    if counts:
        conn.execute(_COUNT_DOWN, counts)
    if released:
        _release(conn, {j.id: j for j in dependents}, released, notify_channel)
    return cancelled


def _policies(conn: Session | Connection, graph_ids: set[int]) -> dict[int | None, str]:
    if not graph_ids:
        return {}
    rows = conn.execute(
        select(graphs_table.c.id, graphs_table.c.on_failure).where(
            graphs_table.c.id.in_(sorted(graph_ids))
        )
    )
    return {int(row.id): str(row.on_failure) for row in rows}


def _cancel(conn: Session | Connection, job: Any, parent: Finished) -> None:
    error = JobError(
        attempt=job.attempt,
        at=utcnow(),
        type="DependencyFailed",
        message=f"job {parent.job_id}, which this job depends on, was {parent.outcome}; the "
        "graph's on_failure='cancel' cancels the jobs that wait for it",
        traceback="",
    )
    conn.execute(
        update(_jobs)
        .where(_jobs.c.id == job.id)
        .values(
            state=JobState.CANCELLED.value,
            finished_at=db_now(),
            waiting_for=0,
            unique_key=_statements.KEY_WHEN_FINISHED,
            errors=_errors_with(job, error),
            **_erasing(job),
        )
    )


def _release(
    conn: Session | Connection,
    jobs: dict[int, Any],
    released: list[int],
    notify_channel: str | None,
) -> None:
    """Make ``released`` jobs claimable, each with its parents' results in its arguments."""
    handed: dict[int, dict[str, Any]] = {job_id: {} for job_id in released}
    results = conn.execute(
        select(_deps.c.job_id, _deps.c.arg, _deps.c.many, _deps.c.result)
        .where(_deps.c.job_id.in_(released))
        .where(_deps.c.arg.is_not(None))
        .where(_deps.c.resolved == true())
        .order_by(_deps.c.job_id, _deps.c.position)
    )
    for row in results:
        into = handed[int(row.job_id)]
        if row.many:
            into.setdefault(row.arg, []).append(row.result)
        else:
            into[row.arg] = row.result
    plain, with_args = [], []
    for job_id in released:
        args = jobs[job_id].args
        # A row whose arguments are not an object (written by hand) keeps them as they are:
        # it fails alone, with its real error, when a worker runs it.
        if isinstance(args, dict) and handed[job_id]:
            with_args.append({"b_id": job_id, "b_args": {**args, **handed[job_id]}})
        else:
            plain.append({"b_id": job_id})
    if plain:
        conn.execute(_RELEASE, plain)
    if with_args:
        conn.execute(_RELEASE_WITH_ARGS, with_args)
    if notify_channel is not None:
        for queue in sorted({jobs[job_id].queue for job_id in released}):
            conn.execute(_statements.NOTIFY, {"p_channel": notify_channel, "p_queue": queue})


def reopen(conn: Session | Connection, job: Any) -> dict[str, Any]:
    """The values that make ``job`` (a graph job an operator retries) wait again for its
    dependencies as they are now: a completed one hands on its current result, an unfinished
    one is waited for. Refuses (:class:`~sqljobs.exceptions.StoreError`) when a dependency
    is gone, or failed under the ``cancel`` policy: retry that one first."""
    edges = conn.execute(
        select(_deps.c.parent_id, _deps.c.arg).where(_deps.c.job_id == job.id)
    ).all()
    if not edges:
        return {}
    parent_ids = sorted(int(edge.parent_id) for edge in edges)
    parents = {
        int(row.id): row
        for row in conn.execute(
            select(_jobs.c.id, _jobs.c.state, _jobs.c.result)
            .where(_jobs.c.id.in_(parent_ids))
            .order_by(_jobs.c.id)
            .with_for_update(read=True)
        )
    }
    policy = _policies(conn, {job.graph_id}).get(job.graph_id, "cancel")
    resolved, open_edges = [], []
    for edge in edges:
        parent = parents.get(int(edge.parent_id))
        if parent is None:
            raise StoreError(
                f"job {job.id} cannot run again: job {edge.parent_id}, which it depends on, "
                "was deleted, and its result with it; enqueue a new graph instead"
            )
        state = str(parent.state)
        if state == JobState.COMPLETED.value or (
            state in (JobState.DISCARDED.value, JobState.CANCELLED.value) and policy != "cancel"
        ):
            resolved.append(
                {
                    "b_job": job.id,
                    "b_parent": edge.parent_id,
                    "b_outcome": state,
                    "b_result": parent.result if edge.arg is not None else None,
                }
            )
        elif state in (JobState.DISCARDED.value, JobState.CANCELLED.value):
            raise StoreError(
                f"job {job.id} cannot run again yet: job {edge.parent_id}, which it depends "
                f"on, is {state} and the graph's on_failure='cancel'; retry job "
                f"{edge.parent_id} first (this job then waits for it)"
            )
        else:
            open_edges.append(int(edge.parent_id))
    if resolved:
        conn.execute(_RESOLVE, resolved)
    if open_edges:
        conn.execute(
            update(_deps)
            .where(_deps.c.job_id == job.id)
            .where(_deps.c.parent_id.in_(open_edges))
            .values(resolved=False, outcome=None, result=None)
        )
        return {"state": JobState.BLOCKED.value, "waiting_for": len(open_edges)}
    handed: dict[str, Any] = {}
    for row in conn.execute(
        select(_deps.c.arg, _deps.c.many, _deps.c.result)
        .where(_deps.c.job_id == job.id)
        .where(_deps.c.arg.is_not(None))
        .order_by(_deps.c.position)
    ):
        if row.many:
            handed.setdefault(row.arg, []).append(row.result)
        else:
            handed[row.arg] = row.result
    values: dict[str, Any] = {"waiting_for": 0}
    if handed and isinstance(job.args, dict):
        values["args"] = {**job.args, **handed}
    return values
