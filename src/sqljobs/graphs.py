"""Job graphs: jobs that wait for other jobs, built in memory and inserted in one transaction.

Build one with ``jobs.graph()``, add nodes (each a job of a task) with their dependencies,
and enqueue it in the caller's session: it exists only if that transaction commits::

    g = jobs.graph(on_failure="cancel")
    fetch = g.add(download, url=url)                      # runs first
    parse = g.add(parse_page, depends_on=fetch, result_as="page")   # gets download's result
    parts = g.group(resize, [{"size": s} for s in (64, 128, 256)], depends_on=parse)
    g.add(publish, depends_on=parts, results_as="images")  # fan-in: all three results, in order
    graph_id = g.enqueue(db)

See docs/workflows.md ("Job graphs") for the rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from .exceptions import GraphError
from .jobs import FINISHED_STATES, Job, JobState, NewJob

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

    from .registry import Task

#: What a graph does to the jobs waiting for a job that is discarded or cancelled.
ON_FAILURE = ("cancel", "continue")


class Node:
    """A job of a :class:`Graph`: give it to later nodes' ``depends_on``. After the graph
    was enqueued, :attr:`id` is the job's id."""

    __slots__ = ("_graph", "_id", "index", "task")

    def __init__(self, graph: Graph, index: int, task: str) -> None:
        self._graph = graph
        self.index = index
        self.task = task
        self._id: int | None = None

    @property
    def id(self) -> int:
        """The job's id (known once the graph was enqueued)."""
        if self._id is None:
            raise GraphError(f"node {self.index} ({self.task}) has no job id before enqueue()")
        return self._id

    def __repr__(self) -> str:
        return f"<Node {self.index} {self.task} id={self._id}>"


#: A dependency: another node of the same graph, or the id of a job enqueued earlier.
Dependency = Node | int


@dataclass(frozen=True, slots=True)
class Parent:
    """One dependency of a new node: ``node`` (an earlier node's index) or ``job_id``."""

    node: int | None = None
    job_id: int | None = None


@dataclass(frozen=True, slots=True)
class NewNode:
    job: NewJob
    parents: tuple[Parent, ...] = ()
    #: The parameter that receives the parents' results, and whether as a list (fan-in).
    arg: str | None = None
    many: bool = False


@dataclass(frozen=True, slots=True)
class NewGraph:
    """A validated graph, ready for the store (nodes in insertion order)."""

    nodes: tuple[NewNode, ...]
    on_failure: str = "cancel"
    name: str | None = None


class _Enqueuer(Protocol):
    def enqueue_graph(self, session: Session | Connection | None, graph: NewGraph) -> GraphIds:
        """Insert ``graph``."""


@dataclass(frozen=True, slots=True)
class GraphIds:
    """What enqueueing a graph returns from the store: the graph's id and its jobs' ids."""

    graph_id: int
    job_ids: tuple[int, ...]


class Graph:
    """A job graph under construction (``jobs.graph(...)``); see the module's example."""

    def __init__(
        self, owner: _Enqueuer, *, on_failure: str = "cancel", name: str | None = None
    ) -> None:
        if on_failure not in ON_FAILURE:
            raise GraphError(
                f"on_failure={on_failure!r} is not a policy; use 'cancel' (a failed job "
                "cancels the jobs waiting for it) or 'continue' (they run anyway)"
            )
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise GraphError("a graph's name is a string of at most 200 characters")
        self._owner = owner
        self.on_failure = on_failure
        self.name = name
        self._nodes: list[NewNode] = []
        self.nodes: list[Node] = []
        self.id: int | None = None

    def add(
        self,
        task: Task[..., Any],
        /,
        *,
        depends_on: Dependency | Iterable[Dependency] = (),
        result_as: str | None = None,
        results_as: str | None = None,
        **kwargs: Any,
    ) -> Node:
        """Add a job of ``task`` with ``kwargs`` (and enqueue options: ``delay``, ``run_at``,
        ``priority``, ``queue``, ``unique_key``) that runs once every job of ``depends_on``
        has finished. ``result_as="name"``: the task's parameter ``name`` receives its one
        dependency's result (a chain); ``results_as="name"``: a list of all their results,
        in ``depends_on`` order (a fan-in).

        Example:
            >>> total = g.add(add_up, depends_on=parts, results_as="values")  # doctest: +SKIP
        """
        self._check_open()
        parents = self._parents(depends_on)
        if result_as is not None and results_as is not None:
            raise GraphError("give result_as (one dependency's result) or results_as, not both")
        if result_as is not None and len(parents) != 1:
            raise GraphError(
                f"result_as={result_as!r} passes one dependency's result, but the node has "
                f"{len(parents)} dependencies; use results_as={result_as!r} for a list"
            )
        if results_as is not None and not parents:
            raise GraphError(f"results_as={results_as!r} needs depends_on (the results' jobs)")
        arg = result_as if result_as is not None else results_as
        job = task.prepare_node((arg,) if arg else (), **kwargs)
        self._nodes.append(NewNode(job, parents, arg=arg, many=results_as is not None))
        node = Node(self, len(self.nodes), task.name)
        self.nodes.append(node)
        return node

    def group(
        self,
        task: Task[..., Any],
        calls: Iterable[Mapping[str, Any]],
        *,
        depends_on: Dependency | Iterable[Dependency] = (),
    ) -> list[Node]:
        """Add one job of ``task`` per mapping of arguments in ``calls``, each depending on
        ``depends_on``; they run in parallel. Returns their nodes, in order."""
        return [self.add(task, depends_on=depends_on, **dict(call)) for call in calls]

    def spec(self) -> NewGraph:
        """The graph as the store inserts it."""
        if not self._nodes:
            raise GraphError("the graph has no jobs; add() some before enqueue()")
        return NewGraph(tuple(self._nodes), on_failure=self.on_failure, name=self.name)

    def enqueue(self, session: Session | Connection | None = None, /) -> int:
        """Insert every job of the graph in ``session``'s transaction (or in one of its own);
        return the graph's id. Nodes then know their job ids (``node.id``)."""
        self._check_open()
        return self._enqueued(self._owner.enqueue_graph(session, self.spec()))

    async def enqueue_async(self, session: AsyncSession, /) -> int:
        """:meth:`enqueue` in an ``AsyncSession``'s transaction (for async endpoints)."""
        self._check_open()
        spec = self.spec()
        inserted = await session.run_sync(
            lambda sync_session: self._owner.enqueue_graph(sync_session, spec)
        )
        return self._enqueued(inserted)

    def _enqueued(self, inserted: GraphIds) -> int:
        self.id = inserted.graph_id
        for node, job_id in zip(self.nodes, inserted.job_ids, strict=True):
            node._id = job_id
        return inserted.graph_id

    def _check_open(self) -> None:
        if self.id is not None:
            raise GraphError(f"graph {self.id} was enqueued already; build a new one")

    def _parents(self, depends_on: Dependency | Iterable[Dependency]) -> tuple[Parent, ...]:
        items: list[Any] = [depends_on] if isinstance(depends_on, Node | int) else list(depends_on)
        parents: list[Parent] = []
        for item in items:
            if isinstance(item, Node) and item._graph is self:
                parents.append(Parent(node=item.index))
            elif isinstance(item, Node):
                if item._id is None:
                    raise GraphError(
                        f"{item!r} belongs to another graph that was not enqueued; enqueue it "
                        "first (its nodes then have ids), or add the job to this graph"
                    )
                parents.append(Parent(job_id=item._id))
            elif isinstance(item, int) and not isinstance(item, bool) and item > 0:
                parents.append(Parent(job_id=item))
            else:
                raise GraphError(
                    f"depends_on takes nodes of a graph or job ids (positive ints), got "
                    f"{type(item).__name__} {item!r}"
                )
        if len(set(parents)) != len(parents):
            raise GraphError("depends_on names the same job twice; name it once")
        return tuple(parents)


@dataclass(frozen=True, slots=True)
class Edge:
    """``job_id`` waits for ``parent_id``; ``outcome``: the parent's, once it finished."""

    job_id: int
    parent_id: int
    resolved: bool
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class GraphSnapshot:
    """A graph as read back (``jobs.get_graph(graph_id)``): its jobs and their edges."""

    id: int
    on_failure: str
    created_at: datetime
    name: str | None = None
    jobs: tuple[Job, ...] = ()
    edges: tuple[Edge, ...] = field(default=())

    @property
    def state(self) -> str:
        """``"completed"`` when every job completed, ``"failed"`` when every job finished but
        some were discarded or cancelled, else ``"running"``."""
        states = {job.state for job in self.jobs}
        if states <= {JobState.COMPLETED}:
            return "completed"
        if states <= FINISHED_STATES:
            return "failed"
        return "running"

    def parents_of(self, job_id: int) -> list[int]:
        return [e.parent_id for e in self.edges if e.job_id == job_id]

    def counts(self) -> dict[JobState, int]:
        found: dict[JobState, int] = {}
        for job in self.jobs:
            found[job.state] = found.get(job.state, 0) + 1
        return found


def external_ids(nodes: Sequence[NewNode]) -> list[int]:
    """The ids of the earlier jobs that ``nodes`` depend on, sorted."""
    return sorted({p.job_id for n in nodes for p in n.parents if p.job_id is not None})
