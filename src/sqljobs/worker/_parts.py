"""What a worker is built from: the pieces of a queue it uses, never the facade itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..events import EventBus
from ..periodic import Schedule
from ..registry import TaskRegistry
from ..store import JobStore
from ._runner import JobRunner

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from ._worker import Worker


@dataclass(frozen=True)
class WorkerParts:
    """The registry, store, runner, event bus and schedules a worker runs jobs with, and the
    callbacks that tell their owner (the :class:`~sqljobs.JobQueue`) it started and stopped,
    so that enqueues in this process wake it."""

    registry: TaskRegistry
    store: JobStore
    runner: JobRunner
    bus: EventBus
    schedules: Sequence[Schedule]
    async_session_factory: async_sessionmaker[Any] | None
    on_start: Callable[[Worker], Any]
    on_stop: Callable[[Worker], Any]


class HasWorkerParts(Protocol):
    """Anything that can hand a worker its parts; :class:`~sqljobs.JobQueue` does."""

    def worker_parts(self) -> WorkerParts: ...
