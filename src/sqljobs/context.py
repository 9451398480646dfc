"""JobContext: what a running task may know and tell about its job.

Declare a ``ctx`` parameter to receive it::

    @jobs.task
    def export(session: Session, ctx: JobContext, report_id: int) -> dict:
        rows = load(session, report_id)
        for done, row in enumerate(rows, 1):
            ctx.checkpoint()                      # raises Cancel if an operator cancelled it
            write(row)
            ctx.set_progress(done / len(rows), f"{done} of {len(rows)} rows")
        ctx.logger.info("exported %d rows", len(rows))
        return {"rows": len(rows)}                # stored as the job's JSON result
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._arguments import check_json
from .exceptions import Cancel, SerializationError
from .jobs import Job

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: Progress messages are stored up to this length.
MAX_PROGRESS_MESSAGE = 500

#: ``session.info`` key marking a job's own session: jobs enqueued in it and dropped by its
#: rollback (the attempt failed, which is logged already) are not warned about again.
JOB_SESSION_INFO = "sqljobs_job_session"

#: While a task that takes a session runs: the job table's engine and the job's session (a
#: sync ``Session``, or an ``AsyncSession`` for an async task).
_job_session: ContextVar[tuple[Engine, Any] | None] = ContextVar(
    "sqljobs_job_session", default=None
)


@contextmanager
def running_with_session(engine: Engine, session: Any) -> Iterator[None]:
    """Mark ``session`` as the session of the job running in this thread (or async task)."""
    token = _job_session.set((engine, session))
    try:
        yield
    finally:
        _job_session.reset(token)


def job_session(engine: Engine) -> Any | None:
    """The session of the job running here, if it takes one and works on ``engine``'s
    database; else None."""
    current = _job_session.get()
    if current is None:
        return None
    job_engine, session = current
    if job_engine is engine or job_engine.url == engine.url:
        return session
    return None


class JobContext:
    """The running job as its task sees it. Thread-safe; one per attempt."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.logger = logging.LoggerAdapter(
            logging.getLogger("sqljobs.task"),
            {"sqljobs": {"job_id": job.id, "task": job.task, "attempt": job.attempt}},
        )
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._progress: tuple[float, str] | None = None
        self._progress_dirty = False
        self._on_cancel: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"<JobContext job={self.job.id} task={self.job.task!r} attempt={self.attempt}>"

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def queue(self) -> str:
        return self.job.queue

    @property
    def enqueued_at(self) -> datetime:
        return self.job.created_at

    # -- cancellation --------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled (or taken away) while running."""
        return self._cancelled.is_set()

    def checkpoint(self) -> None:
        """Raise :class:`~sqljobs.Cancel` if the job was cancelled; call it between steps of
        long sync work (Python cannot interrupt a thread)."""
        if self._cancelled.is_set():
            raise Cancel("cancelled while running")

    def cancel(self) -> None:
        """Mark the attempt cancelled (the worker calls this when it learns of it)."""
        if self._cancelled.is_set():
            return
        self._cancelled.set()
        for callback in list(self._on_cancel):
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        self._on_cancel.append(callback)
        if self._cancelled.is_set():
            callback()

    # -- progress ------------------------------------------------------------------------

    def set_progress(self, fraction: float, message: str = "") -> None:
        """Report how far the job is (0.0 to 1.0). Cheap to call often: the worker stores
        the latest value at most about once a second, never from the task's transaction."""
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not math.isfinite(fraction)
            or not 0 <= fraction <= 1
        ):
            raise ValueError(f"progress is a number between 0 and 1, got {fraction!r}")
        if not isinstance(message, str):
            raise ValueError(f"progress message is a str, got {type(message).__name__}")
        try:
            check_json(message, "progress message")
        except SerializationError as exc:  # the task's mistake, like a bad fraction
            raise ValueError(str(exc)) from None
        value = float(fraction)
        with self._lock:
            self._progress = (value, str(message)[:MAX_PROGRESS_MESSAGE])
            self._progress_dirty = True

    @property
    def progress(self) -> tuple[float, str] | None:
        with self._lock:
            return self._progress

    def take_progress(self) -> tuple[float, str] | None:
        """The progress reported since the last call, if any (for the worker to store)."""
        with self._lock:
            if not self._progress_dirty:
                return None
            self._progress_dirty = False
            return self._progress
