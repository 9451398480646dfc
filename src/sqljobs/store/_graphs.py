"""GraphStore: inserting a job graph, reading it back, cancelling it, and the sweep that
settles dependencies a finishing transaction could not (see :mod:`._settle`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, bindparam, delete, false, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .._utils import utcnow
from ..exceptions import GraphError, GraphNotFound
from ..graphs import Edge, GraphIds, GraphSnapshot, NewGraph, external_ids
from ..jobs import FINISHED_STATES, JobState
from ..schema import dependencies_table, graphs_table
from . import _statements
from ._base import NOTIFY_CHANNEL, _erasing, _errors_with, _jobs, _operator_cancel, row_to_job
from ._dialects import db_now
from ._leases import LeaseStore
from ._settle import Finished, settle

_deps = dependencies_table
_graphs = graphs_table
_FINISHED = sorted(state.value for state in FINISHED_STATES)

# What pruning deletes, found by plain reads and deleted by key (see ``_delete_found``).
_limit = bindparam("p_limit", type_=Integer, literal_execute=True)
_listed: Any = bindparam("p_keys", expanding=True)
_job_of_edge = select(_jobs.c.id).where(_jobs.c.id == _deps.c.job_id).exists()
_ORPHAN_EDGES = select(_deps.c.job_id).where(~_job_of_edge).group_by(_deps.c.job_id).limit(_limit)
_DELETE_ORPHAN_EDGES = delete(_deps).where(_deps.c.job_id.in_(_listed)).where(~_job_of_edge)
_member = select(_jobs.c.id).where(_jobs.c.graph_id == _graphs.c.id).exists()
_EMPTY_GRAPHS = select(_graphs.c.id).where(~_member).limit(_limit)
_DELETE_EMPTY_GRAPHS = delete(_graphs).where(_graphs.c.id.in_(_listed)).where(~_member)


class GraphStore(LeaseStore):
    """Job graphs' statements; :class:`~sqljobs.store.JobStore` builds on it."""

    @property
    def _notify_channel(self) -> str | None:
        return NOTIFY_CHANNEL if self.support.listen_notify else None

    def settle(self, conn: Session | Connection, finished: list[Finished]) -> None:
        """Settle the dependents of ``finished`` jobs inside ``conn``'s transaction."""
        settle(conn, finished, notify_channel=self._notify_channel)

    # -- enqueue -------------------------------------------------------------------------

    def enqueue_graph(self, executor: Session | Connection | None, graph: NewGraph) -> GraphIds:
        """Insert ``graph`` (its row, its jobs, their dependencies) in ``executor``'s
        transaction if given, else in one of its own: all of it, or nothing."""
        if executor is None:
            return self.run(
                lambda conn: self._insert_graph(conn, graph), what="enqueue", repeatable=False
            )
        try:
            return self._insert_graph(executor, graph)
        except SQLAlchemyError as exc:
            raise self.wrap(exc, "enqueue") from exc

    def _insert_graph(self, target: Session | Connection, graph: NewGraph) -> GraphIds:
        now = utcnow()
        # The graph's row first: on SQLite the transaction takes the write lock before it
        # reads any parent, so what it reads cannot change before it commits.
        created: Any = target.execute(
            insert(_graphs).values(name=graph.name, on_failure=graph.on_failure, created_at=now)
        )
        graph_id = int(created.inserted_primary_key[0])
        parents = self._lock_parents(target, external_ids(graph.nodes))
        rows = []
        for node in graph.nodes:
            row = {**node.job.values(now), "graph_id": graph_id, "waiting_for": None}
            if node.parents:
                row.update(state=JobState.BLOCKED.value, waiting_for=len(node.parents))
            rows.append(row)
        ids = self._insert_rows(target, rows)
        # A unique node whose key a job holds already *is* that job: it is not inserted, its
        # own dependencies are not added, and the nodes after it wait for that job.
        joined = set()
        for index, row in enumerate(rows):
            if row["unique_key"] is None:
                continue
            found = target.execute(
                select(_jobs.c.id, _jobs.c.graph_id, _jobs.c.state, _jobs.c.result)
                .where(_jobs.c.id == ids[index])
                .with_for_update(read=True)
            ).one()
            if found.graph_id != graph_id:
                joined.add(index)
                parents[int(found.id)] = found
        edges = []
        for index, node in enumerate(graph.nodes):
            if index in joined:
                continue
            seen: set[int] = set()
            for position, parent in enumerate(node.parents):
                parent_id = ids[parent.node] if parent.node is not None else parent.job_id
                if parent_id is None or parent_id in seen:
                    continue
                seen.add(parent_id)
                edges.append(
                    {
                        "job_id": ids[index],
                        "parent_id": parent_id,
                        "position": position,
                        "arg": node.arg,
                        "many": node.many,
                        "resolved": False,
                    }
                )
            if len(seen) != len(node.parents):  # two dependencies named one existing job
                target.execute(
                    update(_jobs).where(_jobs.c.id == ids[index]).values(waiting_for=len(seen))
                )
        if edges:
            target.execute(insert(_deps), edges)
        if self.support.listen_notify:
            ready = {r["queue"] for r in rows if r["state"] == JobState.AVAILABLE.value}
            for queue in sorted(ready):
                target.execute(_statements.NOTIFY, {"p_channel": NOTIFY_CHANNEL, "p_queue": queue})
        # Dependencies that finished before this transaction locked them settle now, in it.
        done = [
            Finished(job_id, str(row.state), row.result)
            for job_id, row in parents.items()
            if row.state in _FINISHED
        ]
        if done:
            self.settle(target, done)
        return GraphIds(graph_id, tuple(ids))

    def _lock_parents(self, target: Session | Connection, job_ids: list[int]) -> dict[int, Any]:
        """The jobs ``job_ids`` (earlier jobs the graph depends on), share-locked until the
        graph commits: a parent that finishes meanwhile waits for the commit and then sees
        the new dependencies; one that finished before is read as finished."""
        if not job_ids:
            return {}
        rows = target.execute(
            select(_jobs.c.id, _jobs.c.graph_id, _jobs.c.state, _jobs.c.result)
            .where(_jobs.c.id.in_(job_ids))
            .order_by(_jobs.c.id)
            .with_for_update(read=True)
        ).all()
        found = {int(row.id): row for row in rows}
        missing = [job_id for job_id in job_ids if job_id not in found]
        if missing:
            raise GraphError(
                f"depends_on names job(s) {', '.join(map(str, missing))}, which do not exist "
                "(never committed, or deleted or pruned): depend on jobs that exist, or add "
                "them to this graph"
            )
        return found

    def _insert_rows(self, target: Session | Connection, rows: list[dict[str, Any]]) -> list[int]:
        if any(row["unique_key"] for row in rows):
            return [self._insert_unique(target, row) for row in rows]
        dialect = self.engine.dialect
        if len(rows) > 1 and dialect.insert_executemany_returning_sort_by_parameter_order:
            statement = _statements.INSERT_RETURNING_IDS
            return [int(i) for i in target.execute(statement, rows).scalars()]
        inserted: list[Any] = [target.execute(_statements.INSERT, row) for row in rows]
        return [int(result.inserted_primary_key[0]) for result in inserted]

    def _insert_unique(self, target: Session | Connection, row: dict[str, Any]) -> int:
        """Insert ``row`` or return the id of the job holding its unique key (JobStore's)."""
        raise NotImplementedError

    # -- reading, cancelling -------------------------------------------------------------

    def get_graph(self, graph_id: int) -> GraphSnapshot:
        """The graph ``graph_id`` with each job's snapshot and the dependencies between them."""

        def work(conn: Connection) -> GraphSnapshot:
            graph = conn.execute(select(_graphs).where(_graphs.c.id == graph_id)).first()
            if graph is None:
                raise GraphNotFound(f"no job graph with id {graph_id}")
            jobs = [
                row_to_job(row)
                for row in conn.execute(
                    select(_jobs).where(_jobs.c.graph_id == graph_id).order_by(_jobs.c.id)
                )
            ]
            edges: list[Edge] = []
            ids = [job.id for job in jobs]
            if ids:
                edges = [
                    Edge(int(r.job_id), int(r.parent_id), bool(r.resolved), r.outcome)
                    for r in conn.execute(
                        select(_deps.c.job_id, _deps.c.parent_id, _deps.c.resolved, _deps.c.outcome)
                        .where(_deps.c.job_id.in_(ids))
                        .order_by(_deps.c.job_id, _deps.c.position)
                    )
                ]
            return GraphSnapshot(
                id=int(graph.id),
                name=graph.name,
                on_failure=graph.on_failure,
                created_at=graph.created_at,
                jobs=tuple(jobs),
                edges=tuple(edges),
            )

        return self.run(work, what="get graph", read_only=True)

    def cancel_graph(self, graph_id: int) -> list[int]:
        """Cancel every unfinished job of the graph (a running one can no longer commit), and
        settle the jobs outside it that wait for them. Returns the cancelled jobs' ids."""

        def work(conn: Connection) -> list[int]:
            if conn.execute(select(_graphs.c.id).where(_graphs.c.id == graph_id)).first() is None:
                raise GraphNotFound(f"no job graph with id {graph_id}")
            query = (
                select(_jobs)
                .where(_jobs.c.graph_id == graph_id)
                .where(_jobs.c.state.not_in(_FINISHED))
                .order_by(_jobs.c.id)
            )
            if self.support.skip_locked:
                query = query.with_for_update()
            jobs = [row_to_job(row) for row in conn.execute(query)]
            for job in jobs:
                conn.execute(
                    update(_jobs)
                    .where(_jobs.c.id == job.id)
                    .values(
                        state=JobState.CANCELLED.value,
                        finished_at=db_now(),
                        lease_owner=None,
                        lease_expires_at=None,
                        waiting_for=0,
                        unique_key=_statements.KEY_WHEN_FINISHED,
                        errors=_errors_with(job, _operator_cancel(job)),
                        **_erasing(job),
                    )
                )
            self.settle(conn, [Finished(job.id, JobState.CANCELLED.value) for job in jobs])
            return [job.id for job in jobs]

        return self.run(work, what="cancel graph")

    # -- the sweep and pruning -----------------------------------------------------------

    def prune_graph_rows(self) -> int:
        """Delete the dependency rows of jobs that no longer exist (pruned or deleted) and
        graphs with no job left; returns how many rows went. Run after pruning jobs."""
        return self._delete_found(
            _ORPHAN_EDGES, _DELETE_ORPHAN_EDGES, "prune graph rows"
        ) + self._delete_found(_EMPTY_GRAPHS, _DELETE_EMPTY_GRAPHS, "prune graph rows")

    def settle_finished(self, *, limit: int = 500) -> int:
        """Settle dependencies whose job finished without settling them (a job outside any
        graph, finished by an older worker, or deleted): the maintenance loop's safety net.
        Returns how many parents it settled."""

        def work(conn: Connection) -> int:
            parent = _jobs.alias("parent")
            stale = (
                select(_deps.c.parent_id)
                .select_from(_deps.outerjoin(parent, parent.c.id == _deps.c.parent_id))
                .where(_deps.c.resolved == false())
                .where(or_(parent.c.id.is_(None), parent.c.state.in_(_FINISHED)))
                .distinct()
                .limit(limit)
            )
            parent_ids = sorted(int(i) for i in conn.execute(stale).scalars())
            if not parent_ids:
                return 0
            rows = conn.execute(
                select(_jobs.c.id, _jobs.c.state, _jobs.c.result).where(_jobs.c.id.in_(parent_ids))
            ).all()
            found = {int(row.id): row for row in rows}
            finished = [
                Finished(i, str(found[i].state), found[i].result)
                if i in found
                else Finished(i, "deleted")
                for i in parent_ids
                if i not in found or found[i].state in _FINISHED  # not retried meanwhile
            ]
            self.settle(conn, finished)
            return len(finished)

        return self.run(work, what="settle dependencies")
