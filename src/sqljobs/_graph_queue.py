"""Job graphs on the :class:`~sqljobs.JobQueue` facade: build, enqueue, read and cancel them."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from . import events
from ._commit_hooks import report_on_commit
from .graphs import Graph, GraphIds, GraphSnapshot, NewGraph
from .jobs import NewJob
from .store import current_binding, external_binding

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .events import EventBus
    from .instrumentation import Hooks
    from .store import Binding, JobStore


class GraphAdministration:
    """Mixed into :class:`~sqljobs.JobQueue`, which provides the store, the event bus, the
    after-commit report and the running job's session."""

    store: JobStore
    events: EventBus
    hooks: Hooks

    def _committed(
        self, ids: list[int], rows: list[NewJob], *, reserved: bool, binding: Binding | None
    ) -> None:
        raise NotImplementedError

    def _running_jobs_session(self) -> Session | None:
        raise NotImplementedError

    def graph(self, *, on_failure: str = "cancel", name: str | None = None) -> Graph:
        """A new, empty job graph; add jobs to it and enqueue it in one transaction.

        ``on_failure="cancel"``: a job that ends discarded or cancelled cancels the jobs that
        wait for it (and theirs); ``"continue"``: they run anyway, receiving ``None`` as its
        result.

        Example:
            >>> g = jobs.graph(name="order 17")  # doctest: +SKIP
            >>> charge = g.add(charge_card, order_id=17)  # doctest: +SKIP
            >>> g.add(send_receipt, depends_on=charge, result_as="receipt")  # doctest: +SKIP
            >>> graph_id = g.enqueue(db)  # doctest: +SKIP
        """
        return Graph(self, on_failure=on_failure, name=name)

    def enqueue_graph(self, session: Session | Connection | None, graph: NewGraph) -> GraphIds:
        """Insert a built graph (``Graph.enqueue`` calls this) in ``session``'s transaction,
        or in one of its own; inside a running sync task, in the job's session."""
        if session is None:
            session = self._running_jobs_session()
        with self.hooks.current.publishing([node.job for node in graph.nodes]) as traced:
            # Each job of the graph carries the enqueue's trace context (docs/tracing.md).
            nodes = tuple(replace(n, job=job) for n, job in zip(graph.nodes, traced, strict=True))
            inserted = self.store.enqueue_graph(session, replace(graph, nodes=nodes))
        ids, rows = list(inserted.job_ids), [node.job for node in nodes]
        # A session joining a test's outer transaction: its jobs run in that transaction.
        binding = current_binding() or (external_binding(session) if session else None)
        committed = partial(self._committed, reserved=False, binding=binding)
        if isinstance(session, Session):
            report_on_commit(session, ids, rows, committed)
        else:
            committed(ids, rows)
        return inserted

    def get_graph(self, graph_id: int) -> GraphSnapshot:
        """A snapshot of graph ``graph_id``: its jobs (with their states) and dependencies."""
        return self.store.get_graph(graph_id)

    def cancel_graph(self, graph_id: int) -> list[int]:
        """Cancel every unfinished job of graph ``graph_id``; returns their ids. Jobs in other
        graphs that wait for them follow their own graph's ``on_failure``."""
        cancelled = self.store.cancel_graph(graph_id)
        for job_id in cancelled:
            self.events.emit(
                events.JOB_CANCELLED, job=self.store.get(job_id), outcome=None, duration=None
            )
        return cancelled


__all__ = ["GraphAdministration"]
