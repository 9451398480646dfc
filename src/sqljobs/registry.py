"""Tasks and the registry that maps task names to them. No database, no threads."""

from __future__ import annotations

import difflib
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._arguments import ArgumentSpec
from ._utils import Duration, as_utc, to_seconds, to_timedelta, utcnow
from .exceptions import ConfigurationError, TaskAlreadyRegistered, TaskNotRegistered
from .jobs import NewJob
from .retry import Backoff
from .unique import Unique, key_digest

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

    from .jobqueue import JobQueue

R = TypeVar("R")

#: The parameter through which a task receives its own session.
SESSION_PARAMETER = "session"
#: The parameter through which a task receives its :class:`~sqljobs.JobContext`.
CONTEXT_PARAMETER = "ctx"
#: Keyword names ``enqueue`` keeps for its options, so tasks cannot use them as parameters.
ENQUEUE_OPTIONS = frozenset({"delay", "run_at", "priority", "queue", "unique_key"})
DEFAULT_MAX_ATTEMPTS = 10


class Task(Generic[R]):
    """A function registered with a :class:`~sqljobs.JobQueue`, runnable as a durable job.

    Create tasks with ``@jobs.task``; call ``.enqueue(...)`` to run one in the background.
    Calling the task object directly runs the function now, in the caller's thread.

    Example:
        >>> @jobs.task(max_attempts=5)                                    # doctest: +SKIP
        ... def update_record(session: Session, record_id: int) -> None:
        ...     session.get(Record, record_id).status = "done"
        >>> job_id = update_record.enqueue(db, record_id=42)              # doctest: +SKIP
    """

    def __init__(
        self,
        func: Callable[..., R] | Callable[..., Awaitable[R]],
        *,
        owner: JobQueue,
        name: str,
        queue: str,
        priority: int,
        max_attempts: int,
        backoff: Backoff,
        timeout: float | None,
        unique: Unique | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ConfigurationError(f"task {name}: max_attempts must be at least 1")
        parameters = inspect.signature(func).parameters
        clashes = sorted(ENQUEUE_OPTIONS & parameters.keys())
        if clashes:
            raise ConfigurationError(
                f"task {name}: parameter(s) {clashes} clash with enqueue options "
                f"{sorted(ENQUEUE_OPTIONS)}; rename them (e.g. {clashes[0]}_value)"
            )
        self.func = func
        self.owner = owner
        self.name = name
        self.queue = queue
        self.priority = priority
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.timeout = timeout
        self.is_async = inspect.iscoroutinefunction(func)
        self.unique = unique
        self.wants_session = SESSION_PARAMETER in parameters
        self.wants_context = CONTEXT_PARAMETER in parameters
        injected = frozenset({SESSION_PARAMETER, CONTEXT_PARAMETER}) & parameters.keys()
        self.arguments = ArgumentSpec(func, frozenset(injected))
        if unique is not None:
            _check_unique_names(name, unique, self.arguments)

    def __repr__(self) -> str:
        return f"<Task {self.name!r} queue={self.queue!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def prepare(
        self,
        *,
        delay: Duration | None = None,
        run_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        unique_key: str | None = None,
        **kwargs: Any,
    ) -> NewJob:
        """Validate arguments and options into a job row, without inserting it."""
        args = self.arguments.validate(kwargs)
        scope: str | None = self.unique.scope if self.unique else None
        if unique_key is None and self.unique is not None:
            unique_key = self.unique.key(self.name, args, utcnow())
        elif unique_key is not None:
            unique_key = key_digest(f"{self.name}:{unique_key}")
            scope = scope or "active"
        return NewJob(
            task=self.name,
            args=args,
            queue=queue if queue is not None else self.queue,
            priority=priority if priority is not None else self.priority,
            max_attempts=self.max_attempts,
            run_at=_run_at(delay, run_at),
            unique_key=unique_key,
            unique_scope=scope,
        )

    def enqueue(
        self,
        session: Session | Connection | None = None,
        /,
        *,
        delay: Duration | None = None,
        run_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        unique_key: str | None = None,
        **kwargs: Any,
    ) -> int:
        """Store a job that runs this task with ``kwargs``; return its id.

        With ``session``, the job is inserted in that session's transaction: it exists only if
        the caller commits. Without, it is inserted and committed at once, except inside a
        running sync task that takes a session: there it joins the job's session. If the task is
        unique (or ``unique_key`` is given) and a job holds the key, that job's id is returned
        and nothing is inserted.
        """
        job = self.prepare(
            delay=delay,
            run_at=run_at,
            priority=priority,
            queue=queue,
            unique_key=unique_key,
            **kwargs,
        )
        return self.owner.enqueue_many(session, [job])[0]

    async def enqueue_async(
        self,
        session: AsyncSession,
        /,
        *,
        delay: Duration | None = None,
        run_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        unique_key: str | None = None,
        **kwargs: Any,
    ) -> int:
        """Like :meth:`enqueue`, in an ``AsyncSession``'s transaction (for async endpoints)."""
        job = self.prepare(
            delay=delay,
            run_at=run_at,
            priority=priority,
            queue=queue,
            unique_key=unique_key,
            **kwargs,
        )
        ids = await self.owner.enqueue_many_async(session, [job])
        return ids[0]


def _run_at(delay: Duration | None, run_at: datetime | None) -> datetime | None:
    if delay is not None and run_at is not None:
        raise ValueError("pass either delay= or run_at=, not both")
    if delay is not None:
        return utcnow() + to_timedelta(delay, name="delay")
    if run_at is not None:
        return as_utc(run_at, name="run_at")
    return None


def timeout_seconds(timeout: Duration | None) -> float | None:
    if timeout is None:
        return None
    seconds = to_seconds(timeout, name="timeout")
    if seconds <= 0:
        raise ConfigurationError("timeout must be positive (or None for no timeout)")
    return seconds


class TaskRegistry(Mapping[str, Task[Any]]):
    """Task name → :class:`Task`. Each :class:`~sqljobs.JobQueue` owns one."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task[Any]] = {}

    def add(self, task: Task[Any]) -> None:
        existing = self._tasks.get(task.name)
        if existing is not None and existing.func is not task.func:
            raise TaskAlreadyRegistered(
                f"a task named {task.name!r} is already registered; pass name= to tell them apart"
            )
        self._tasks[task.name] = task

    def __getitem__(self, name: str) -> Task[Any]:
        try:
            return self._tasks[name]
        except KeyError:
            raise TaskNotRegistered(self._not_registered(name)) from None

    def _not_registered(self, name: str) -> str:
        message = (
            f"no task named {name!r} is registered in this process; import the module that "
            "defines it before starting the worker"
        )
        if name.startswith("__main__."):
            message += (
                ". The job was enqueued by a task defined in a script run as __main__: give "
                "the task an explicit name= (or define it in a module both import)"
            )
        close = difflib.get_close_matches(name, list(self._tasks), n=3, cutoff=0.6)
        if close:
            message += f"; registered tasks with similar names: {', '.join(map(repr, close))}"
        return message

    def get(self, name: str, default: Any = None) -> Any:
        return self._tasks.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def queues(self) -> list[str]:
        return sorted({task.queue for task in self._tasks.values()})

    def by_queue(self, queues: Iterable[str]) -> list[Task[Any]]:
        wanted = set(queues)
        return [task for task in self._tasks.values() if task.queue in wanted]


log = logging.getLogger("sqljobs")


def default_task_name(func: Callable[..., Any]) -> str:
    """``module.qualname``; for a function of a script run as ``__main__``, the name its
    module has when a worker imports it (``python app.py`` -> ``app``), since no worker can
    run a task named ``__main__.x``."""
    module = func.__module__
    if module == "__main__":
        module = _importable_main_name() or module
        log.warning(
            "task %s is defined in a script run as __main__; it is stored as %r, the name a "
            "worker that imports the module %r knows it by. Define tasks in a module that the "
            "app and the worker both import, or pass name= to @jobs.task",
            func.__qualname__,
            f"{module}.{func.__qualname__}",
            module,
        )
    return f"{module}.{func.__qualname__}"


def _importable_main_name() -> str | None:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return str(spec.name)  # python -m package.module
    path = getattr(main, "__file__", None)
    return Path(path).stem if path else None


def make_backoff(value: Backoff | timedelta | float | None) -> Backoff:
    return Backoff.coerce(value if value is not None else Backoff(base=2.0))


def _check_unique_names(task: str, unique: Unique, spec: ArgumentSpec) -> None:
    """Refuse ``Unique(by_args=[...])`` naming a parameter the task does not have: a typo
    would otherwise make every job of the task share one key."""
    if isinstance(unique.by_args, bool):
        return
    if isinstance(unique.by_args, str):
        raise ConfigurationError(
            f"task {task}: Unique(by_args=...) takes a list of parameter names, got the "
            f"string {unique.by_args!r}; write by_args=[{unique.by_args!r}]"
        )
    if spec.accepts_any_keyword:
        return
    known = [
        name
        for name in spec.parameters
        if spec.parameters[name].kind is not spec.parameters[name].VAR_KEYWORD
    ]
    for wanted in unique.by_args:
        if wanted in known:
            continue
        close = difflib.get_close_matches(str(wanted), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigurationError(
            f"task {task}: Unique(by_args=...) names {wanted!r}, which is not a parameter of "
            f"the task (it has {', '.join(map(repr, known)) or 'no parameters'}){hint}"
        )
