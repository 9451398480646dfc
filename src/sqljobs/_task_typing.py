"""Static types of task registration: what ``@jobs.task`` makes of a function's signature.

A task's parameters minus the ones sqljobs injects (``session``, ``ctx``) are what
``task.enqueue(...)`` takes. Type checkers see that through :class:`TaskDecorator`'s
overloads, one per way a task can start (PEP 612 ``Concatenate`` strips injected parameters
by position, so ``session`` and ``ctx`` come first, as sqljobs' docs write them):

    @jobs.task
    def send_welcome(session: Session, user_id: int) -> None: ...

    send_welcome.enqueue(db, user_id=1)      # checked: Task[(user_id: int), None]
    send_welcome.enqueue(db, user="1")       # mypy: unexpected keyword argument "user"

An async function's ``Task`` is typed by what its coroutine returns. A function whose first
parameter is not annotated matches several overloads at once, and type checkers then give
its task the type ``Any`` (nothing checked, nothing wrongly refused). At run time
``jobs.task`` is a :class:`TaskRegistrar`; the overloads only describe it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    ParamSpec,
    Protocol,
    TypedDict,
    TypeVar,
    overload,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session
    from typing_extensions import Unpack

    from ._utils import Duration
    from .context import JobContext
    from .flow import Debounce, KeyLimit
    from .registry import Task
    from .retry import Backoff
    from .unique import Unique

P = ParamSpec("P")
R = TypeVar("R")
#: Any Session subclass (SQLModel's, an app's own ``class_=``) is a job session.
S = TypeVar("S", bound="Session")
A = TypeVar("A", bound="AsyncSession")


class TaskOptions(TypedDict, total=False):
    """The keyword options of ``@jobs.task(...)`` (see :meth:`sqljobs.JobQueue.task`)."""

    name: str | None
    queue: str
    priority: int
    max_attempts: int
    backoff: Backoff | timedelta | float | None
    timeout: Duration | None
    unique: Unique | bool | None
    limit: KeyLimit | None
    debounce: Debounce | None


class TaskDecorator(Protocol):
    """``jobs.task``: called with a function, registers it and returns its ``Task``, typed by
    the function's parameters after the injected ones; called with options only, returns
    itself with those options (``@jobs.task(queue="mail")``)."""

    @overload
    def __call__(
        self, func: Callable[Concatenate[S, JobContext, P], R], /, **options: Unpack[TaskOptions]
    ) -> Task[P, R]: ...
    @overload
    def __call__(
        self, func: Callable[Concatenate[JobContext, S, P], R], /, **options: Unpack[TaskOptions]
    ) -> Task[P, R]: ...
    @overload
    def __call__(
        self,
        func: Callable[Concatenate[A, JobContext, P], Awaitable[R]],
        /,
        **options: Unpack[TaskOptions],
    ) -> Task[P, R]: ...
    @overload
    def __call__(
        self,
        func: Callable[Concatenate[JobContext, A, P], Awaitable[R]],
        /,
        **options: Unpack[TaskOptions],
    ) -> Task[P, R]: ...
    @overload
    def __call__(
        self, func: Callable[Concatenate[S, P], R], /, **options: Unpack[TaskOptions]
    ) -> Task[P, R]: ...
    @overload
    def __call__(
        self, func: Callable[Concatenate[A, P], Awaitable[R]], /, **options: Unpack[TaskOptions]
    ) -> Task[P, R]: ...
    @overload
    def __call__(
        self,
        func: Callable[Concatenate[JobContext, P], Awaitable[R]],
        /,
        **options: Unpack[TaskOptions],
    ) -> Task[P, R]: ...
    @overload
    def __call__(
        self, func: Callable[Concatenate[JobContext, P], R], /, **options: Unpack[TaskOptions]
    ) -> Task[P, R]: ...
    @overload
    def __call__(
        self, func: Callable[P, Awaitable[R]], /, **options: Unpack[TaskOptions]
    ) -> Task[P, R]: ...
    @overload
    def __call__(self, func: Callable[P, R], /, **options: Unpack[TaskOptions]) -> Task[P, R]: ...
    @overload
    def __call__(self, /, **options: Unpack[TaskOptions]) -> TaskDecorator: ...


class TaskRegistrar:
    """The object ``jobs.task`` is at run time (typed as :class:`TaskDecorator`): with a
    function it registers it with the options gathered so far; without, it gathers more."""

    def __init__(self, register: Callable[..., Task[..., Any]], options: dict[str, Any]) -> None:
        self._register = register
        self._options = options

    def __call__(self, func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        gathered = {**self._options, **options}
        if func is None:
            return TaskRegistrar(self._register, gathered)
        return self._register(func, **gathered)
