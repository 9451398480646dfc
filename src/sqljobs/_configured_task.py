"""``task.configure(...)``: a task with enqueue options set, whose ``enqueue`` stays checked
against the task's signature (PEP 612 allows no option keywords beside ``P.kwargs``).

Example:
    >>> send_welcome.configure(delay=60, priority=-1).enqueue(db, user_id=1)  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Generic, ParamSpec, TypedDict, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session
    from typing_extensions import Unpack

    from ._utils import Duration
    from .jobs import NewJob
    from .registry import Task

P = ParamSpec("P")
R = TypeVar("R")


class EnqueueOptions(TypedDict, total=False):
    """How one job runs, beside its arguments (see :meth:`sqljobs.registry.Task.enqueue`)."""

    delay: Duration | None
    run_at: datetime | None
    priority: int | None
    queue: str | None
    unique_key: str | None
    limit_key: str | None
    debounce_key: str | None
    debounce: Duration | None


class ConfiguredTask(Generic[P, R]):
    """A :class:`~sqljobs.registry.Task` with :class:`EnqueueOptions` set; made by
    ``task.configure(...)``, which can be called again to add or replace options."""

    def __init__(self, task: Task[P, R], options: EnqueueOptions) -> None:
        self.task = task
        self.options = options

    def __repr__(self) -> str:
        return f"<ConfiguredTask {self.task.name!r} {dict(self.options)!r}>"

    def configure(self, **options: Unpack[EnqueueOptions]) -> ConfiguredTask[P, R]:
        """These options with ``options`` added (a repeated one replaces the earlier)."""
        return ConfiguredTask(self.task, {**self.options, **options})

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> NewJob:
        """The job this would enqueue, not inserted (for ``jobs.enqueue_many``)."""
        return self.task.prepare(**self.options, **self.task.as_keywords(args, kwargs))

    def enqueue(
        self, session: Session | Connection | None = None, /, *args: P.args, **kwargs: P.kwargs
    ) -> int:
        """Like ``task.enqueue`` (see there), with these options."""
        return self.task.owner.enqueue_many(session, [self.prepare(*args, **kwargs)])[0]

    async def enqueue_async(
        self, session: AsyncSession, /, *args: P.args, **kwargs: P.kwargs
    ) -> int:
        """Like ``task.enqueue_async``, with these options."""
        ids = await self.task.owner.enqueue_many_async(session, [self.prepare(*args, **kwargs)])
        return ids[0]
