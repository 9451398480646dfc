"""An in-process worker that lives as long as an ASGI app: an async context manager.

No FastAPI import here: Starlette, FastAPI and any ASGI server that speaks the lifespan
protocol call ``lifespan(app)`` and enter what it returns. :mod:`sqljobs.fastapi` and
:meth:`sqljobs.JobQueue.lifespan` build on it.

The worker's ``start()`` and ``stop(grace)`` block (they talk to the database and join
threads), so they run in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from .._utils import Duration, to_seconds
from ._async_runner import AsyncRunner
from ._worker import DEFAULT_PRUNE_AFTER

if TYPE_CHECKING:
    from ..jobqueue import JobQueue
    from ._worker import Worker

log = logging.getLogger("sqljobs.lifespan")
#: Loggers ASGI servers configure for their own lines (uvicorn's default shows only these).
SERVER_LOGGERS = ("uvicorn.error", "gunicorn.error", "hypercorn.error")

#: What Starlette/FastAPI accept as ``lifespan=``: ``app -> async context manager``.
AppLifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


class WorkerLifespan:
    """Start a :class:`~sqljobs.Worker` after the app's startup, drain it on shutdown.

    Call it with the app (as Starlette does) to get the async context manager. ``wrap``
    is the app's own lifespan: it starts first and stops last, so the worker can rely on
    whatever it sets up (tables, clients) and the app's state it yields is passed through.

    Args:
        jobs: the queue whose tasks the worker runs.
        concurrency, prefetch, queues, poll_interval, lease, prune_after, prune_interval: as
            for :class:`~sqljobs.Worker` (``prune_after``: finished jobs older than this are
            deleted, default 7 days; None keeps them; ``prune_interval``: how often, default
            5 minutes, the first time after at most 10 seconds).
        grace: seconds running jobs get to finish at shutdown; the rest go back to the queue.
        wrap: the app's own lifespan, to compose with.
        create_schema: create the sqljobs tables at startup if missing (quick starts; use
            Alembic in production).
        enabled: False runs no worker here (e.g. when ``sqljobs worker`` processes do the
            work), keeping the rest of the lifespan. Read at each startup, like the queue's
            ``lifespan_workers``: tests may set either after the app was imported.
        share_event_loop: run ``async def`` tasks on the app's event loop, so that tasks and
            endpoints can share one async engine (an async engine's connections belong to
            the loop that opened them). False keeps them on sqljobs' own loop thread.
    """

    def __init__(
        self,
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
    ) -> None:
        self.jobs = jobs
        self.grace = to_seconds(grace, name="grace")
        self.wrap = wrap
        self.create_schema = create_schema
        self.enabled = enabled
        self.share_event_loop = share_event_loop
        self.worker_options: dict[str, Any] = {
            "concurrency": concurrency,
            "prefetch": prefetch,
            "queues": queues,
            "grace": grace,
            "poll_interval": poll_interval,
            "lease": lease,
            "prune_after": prune_after,
            "prune_interval": prune_interval,
        }
        #: The running worker, while the app lives (None otherwise).
        self.worker: Worker | None = None

    def __repr__(self) -> str:
        return f"<WorkerLifespan {self.jobs!r} {self.worker_options}>"

    def __call__(self, app: Any) -> AbstractAsyncContextManager[Any]:
        return self._lifespan(app)

    @asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[Any]:
        async with AsyncExitStack() as stack:
            state = await stack.enter_async_context(self.wrap(app)) if self.wrap else None
            if self.enabled and self.jobs.lifespan_workers:
                await stack.enter_async_context(self.running())
            yield state

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Worker]:
        """The worker alone, without an app: ``async with lifespan.running() as worker``."""
        if self.create_schema:
            await asyncio.to_thread(self.jobs.create_schema)
        worker = self.jobs.worker(**self.worker_options)
        restore = self._share_loop() if self.share_event_loop else None
        try:
            await asyncio.to_thread(worker.start)
        except BaseException:
            if restore is not None:
                restore()
            raise
        self.worker = worker
        announce = _server_log()
        if announce is not None:
            announce.info(
                "sqljobs worker %s started in-process: queues=%s concurrency=%d database=%s",
                worker.id,
                ",".join(worker.queues),
                worker.concurrency,
                self.jobs.engine.url.render_as_string(hide_password=True),
            )
        try:
            yield worker
        finally:
            try:
                await asyncio.shield(asyncio.to_thread(worker.stop, self.grace))
                if announce is not None:
                    announce.info("sqljobs worker %s stopped: %s", worker.id, worker.stats)
            finally:
                self.worker = None
                if restore is not None:
                    restore()

    def _share_loop(self) -> Callable[[], None]:
        """Point the queue's async tasks at the running loop; return how to undo it."""
        attached = AsyncRunner.attached(asyncio.get_running_loop(), threading.get_ident())
        jobs = self.jobs
        with jobs._runner_lock:
            previous, jobs._async_runner = jobs._async_runner, attached

        def restore() -> None:
            with jobs._runner_lock:
                if jobs._async_runner is attached:
                    jobs._async_runner = previous
            attached.close()

        return restore


def _server_log() -> logging.Logger | None:
    """The ASGI server's logger, when the app set up no logging that shows sqljobs' own
    lines: uvicorn's default configuration shows only its loggers, so the in-process worker
    would start and stop silently."""
    if logging.getLogger("sqljobs").hasHandlers():
        return None
    for name in SERVER_LOGGERS:
        server = logging.getLogger(name)
        if server.hasHandlers():
            return server
    return None
