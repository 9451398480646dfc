"""FastAPI integration (extra ``sqljobs[fastapi]``): in-process workers that start and
drain with the app, and an enqueuer bound to the request's own session.

Example:
    >>> from fastapi import Depends, FastAPI                                  # doctest: +SKIP
    >>> import sqljobs.fastapi
    >>>
    >>> def get_db():                                  # the app's usual dependency
    ...     with SessionLocal() as db:
    ...         yield db
    >>>
    >>> app = FastAPI(lifespan=sqljobs.fastapi.lifespan(jobs, concurrency=4, wrap=app_lifespan))
    >>> Enqueue = Annotated[sqljobs.fastapi.Enqueuer, Depends(sqljobs.fastapi.enqueuer(get_db))]
    >>>
    >>> @app.post("/records/{record_id}/refresh")
    ... def refresh(record_id: int, enqueue: Enqueue, db: Session = Depends(get_db)):
    ...     job_id = enqueue(update_record, record_id=record_id)  # in the request's transaction
    ...     db.commit()                                           # the job exists iff this commits
    ...     return {"job_id": job_id}

``enqueuer(get_db)`` asks FastAPI for the *same* ``get_db`` dependency as the endpoint
(FastAPI resolves a dependency once per request), so the enqueuer and the endpoint share one
session and one transaction. Only this module imports FastAPI.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from fastapi import Depends
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, scoped_session

from ._utils import Duration
from .exceptions import ConfigurationError
from .web.router import router
from .worker._lifespan import AppLifespan, WorkerLifespan
from .worker._worker import DEFAULT_PRUNE_AFTER

if TYPE_CHECKING:
    from ._configured_task import ConfiguredTask
    from .jobqueue import JobQueue
    from .registry import Task

P = ParamSpec("P")
R = TypeVar("R")

__all__ = [
    "AsyncEnqueuer",
    "Enqueuer",
    "WorkerLifespan",
    "async_enqueuer",
    "enqueuer",
    "lifespan",
    "router",
]


def lifespan(
    jobs: JobQueue,
    *,
    concurrency: int = 4,
    prefetch: int | None = None,
    queues: Sequence[str] | None = None,
    grace: Duration = 30.0,
    poll_interval: Duration = 0.5,
    lease: Duration = 30.0,
    prune_after: Duration | None = DEFAULT_PRUNE_AFTER,
    prune_interval: Duration = 300.0,
    wrap: AppLifespan | None = None,
    create_schema: bool = False,
    enabled: bool = True,
    share_event_loop: bool = True,
) -> WorkerLifespan:
    """A lifespan for ``FastAPI(lifespan=...)`` running an in-process worker.

    The worker starts after the app's own lifespan (``wrap``) has started, and on shutdown
    stops claiming, gives running jobs ``grace`` seconds to finish and returns the rest to
    the queue, before the app's own lifespan ends. ``jobs.lifespan`` is the same with the
    defaults. See :class:`~sqljobs.worker._lifespan.WorkerLifespan` for every option.

    Example:
        >>> @asynccontextmanager                                             # doctest: +SKIP
        ... async def app_lifespan(app):
        ...     Base.metadata.create_all(engine)
        ...     yield
        >>> app = FastAPI(lifespan=sqljobs.fastapi.lifespan(jobs, wrap=app_lifespan))
    """
    return WorkerLifespan(
        jobs,
        concurrency=concurrency,
        prefetch=prefetch,
        queues=queues,
        grace=grace,
        poll_interval=poll_interval,
        lease=lease,
        prune_after=prune_after,
        prune_interval=prune_interval,
        wrap=wrap,
        create_schema=create_schema,
        enabled=enabled,
        share_event_loop=share_event_loop,
    )


class Enqueuer:
    """Enqueues jobs in one request's session (sync ``Session``): each job is inserted in
    that session's transaction and exists only if the request commits it. The endpoint must
    call ``db.commit()``: a session closed or rolled back with jobs it never committed logs a
    WARNING naming them (their ids were returned, but they never exist).

    Get one with ``Depends(enqueuer(get_db))``; call it like ``task.enqueue`` without the
    session: ``enqueue(update_record, record_id=1)`` returns the job id at once.
    """

    def __init__(self, session: Session | Connection) -> None:
        self.session = session

    def __repr__(self) -> str:
        return f"<Enqueuer session={self.session!r}>"

    def __call__(
        self, task: Task[P, R] | ConfiguredTask[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> int:
        """Enqueue ``task`` (or ``task.configure(delay=...)``) with these arguments, checked
        against its signature, in the request's transaction; return the job id. Options
        given here as keywords (``delay=``, ``priority=``...) are accepted too, unchecked."""
        return task.enqueue(self.session, *args, **kwargs)

    enqueue = __call__

    def enqueue_many(
        self, task: Task[..., Any], arguments: Iterable[Mapping[str, Any]]
    ) -> list[int]:
        """Enqueue one job of ``task`` per mapping of arguments, in one statement."""
        rows = [task.prepare(**dict(kwargs)) for kwargs in arguments]
        return task.owner.enqueue_many(self.session, rows)


class AsyncEnqueuer:
    """Like :class:`Enqueuer`, for endpoints holding an ``AsyncSession``; await its calls.

    Get one with ``Depends(async_enqueuer(get_async_db))``.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def __repr__(self) -> str:
        return f"<AsyncEnqueuer session={self.session!r}>"

    async def __call__(
        self, task: Task[P, R] | ConfiguredTask[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> int:
        """Enqueue ``task`` with these arguments in the request's transaction; return the
        job id (see :meth:`Enqueuer.__call__`)."""
        return await task.enqueue_async(self.session, *args, **kwargs)

    enqueue = __call__

    async def enqueue_many(
        self, task: Task[..., Any], arguments: Iterable[Mapping[str, Any]]
    ) -> list[int]:
        """Enqueue one job of ``task`` per mapping of arguments, in one statement."""
        rows = [task.prepare(**dict(kwargs)) for kwargs in arguments]
        return await task.owner.enqueue_many_async(self.session, rows)


def enqueuer(get_session: Callable[..., Any]) -> Callable[..., Enqueuer]:
    """A dependency giving an :class:`Enqueuer` bound to the session ``get_session`` provides.

    ``get_session`` is the app's own session dependency (a function that returns or
    ``yield``\\ s a ``Session``). FastAPI resolves it once per request, so the endpoint's
    ``Depends(get_session)`` and the enqueuer see the same session and transaction.
    """

    _check_dependency(get_session, wants_async=False)
    provided = Depends(get_session)

    def sqljobs_enqueuer(session: Any = provided) -> Enqueuer:
        if isinstance(session, scoped_session):
            session = session()
        if isinstance(session, AsyncSession):
            raise ConfigurationError(
                f"{_name(get_session)} provides an AsyncSession: use "
                "sqljobs.fastapi.async_enqueuer(...) and await the enqueue call"
            )
        if not isinstance(session, (Session, Connection)):
            raise ConfigurationError(
                f"{_name(get_session)} provided a {type(session).__name__}, not a SQLAlchemy "
                "Session: enqueuer() needs the dependency that gives endpoints their session"
            )
        return Enqueuer(session)

    return sqljobs_enqueuer


def async_enqueuer(get_session: Callable[..., Any]) -> Callable[..., AsyncEnqueuer]:
    """A dependency giving an :class:`AsyncEnqueuer` bound to the ``AsyncSession`` that
    ``get_session`` provides (the same one the endpoint gets)."""

    _check_dependency(get_session, wants_async=True)
    provided = Depends(get_session)

    def sqljobs_async_enqueuer(session: Any = provided) -> AsyncEnqueuer:
        if not isinstance(session, AsyncSession):
            raise ConfigurationError(
                f"{_name(get_session)} provided a {type(session).__name__}, not an "
                "AsyncSession: use sqljobs.fastapi.enqueuer(...) for sync sessions"
            )
        return AsyncEnqueuer(session)

    return sqljobs_async_enqueuer


def _check_dependency(get_session: Callable[..., Any], *, wants_async: bool) -> None:
    """Refuse, when the dependency is declared (app start-up, not the first request), a
    session dependency of the other kind: an ``async def`` one for :func:`enqueuer`, one
    that is sync or declared to give a sync ``Session`` for :func:`async_enqueuer`."""
    if not callable(get_session):
        raise ConfigurationError(
            f"{'async_' if wants_async else ''}enqueuer() takes the app's session dependency "
            f"(the function endpoints use in Depends(...)), not {type(get_session).__name__}"
        )
    is_async = inspect.iscoroutinefunction(get_session) or inspect.isasyncgenfunction(get_session)
    declared = str(inspect.signature(get_session).return_annotation)
    gives_sync_session = "Session" in declared and "AsyncSession" not in declared
    if wants_async and (gives_sync_session or (inspect.isgeneratorfunction(get_session))):
        if "AsyncSession" not in declared:
            raise ConfigurationError(
                f"async_enqueuer({_name(get_session)}): that dependency is sync and gives a "
                "sync Session; use sqljobs.fastapi.enqueuer(...), or pass the async "
                "dependency that yields the endpoints' AsyncSession"
            )
    if not wants_async and is_async:
        raise ConfigurationError(
            f"enqueuer({_name(get_session)}): that dependency is async (it gives an "
            "AsyncSession); use sqljobs.fastapi.async_enqueuer(...) and await the enqueue call"
        )


def _name(dependency: Callable[..., Any]) -> str:
    return getattr(dependency, "__qualname__", repr(dependency))
