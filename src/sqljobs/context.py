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

A task without a session of its own runs durable steps through it (docs/workflows.md)::

    @jobs.task
    def fulfil(ctx: JobContext, order_id: int) -> None:
        charge = ctx.step("charge", charge_card, order_id=order_id)  # once, result stored
        ctx.step("ship", ship_order, order_id=order_id, charge_id=charge["id"])
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ._arguments import check_json
from .exceptions import Cancel, SerializationError, StepMisused
from .job_logs import JobLogger
from .jobs import Job
from .steps import StepRunner, check_step_name, current_step

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

T = TypeVar("T")

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
        #: Lines logged through it are kept with the attempt (docs/logs.md).
        self.logger: logging.LoggerAdapter[logging.Logger] = JobLogger(
            logging.getLogger("sqljobs.task"),
            {"job_id": job.id, "task": job.task, "attempt": job.attempt},
            job.id,
        )
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._progress: tuple[float, str] | None = None
        self._progress_dirty = False
        self._on_cancel: list[Callable[[], None]] = []
        self._steps: StepRunner | None = None

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

    # -- durable steps -------------------------------------------------------------------

    def attach_steps(self, runner: StepRunner) -> None:
        """Give this attempt its step runner (the worker does, before the task runs)."""
        self._steps = runner

    def step(self, name: str, func: Callable[..., T], /, **kwargs: Any) -> T:
        """Run ``func(**kwargs)`` as the durable step ``name`` of this job; return its result.

        The step runs in its own transaction: a ``session`` parameter of ``func`` receives a
        fresh session, and the step's writes, its result and the check that this worker
        still holds the job's lease commit together. A step that completed in an earlier
        attempt is not run again: its stored result comes back (the same value the first run
        returned, decoded by ``func``'s return annotation like arguments are). Call the steps
        of a job in the same order on every attempt, each name once. Example::

            charge = ctx.step("charge", charge_card, order_id=order_id)

        A step that raises records its error (and attempt) on the step and re-raises it: the
        job fails and its retry runs that step again. Rules and edges: docs/workflows.md.
        """
        runner = self._step_runner(name)
        return runner.run(name, func, kwargs)  # type: ignore[no-any-return]

    async def astep(self, name: str, func: Callable[..., Any], /, **kwargs: Any) -> Any:
        """:meth:`step` for async tasks: ``await ctx.astep("charge", charge_card, ...)``.
        An ``async def`` step's ``session`` is an ``AsyncSession`` (from the queue's
        ``async_session_factory``); a sync step runs in a thread with a sync ``Session``."""
        runner = self._step_runner(name)
        return await runner.run_async(name, func, kwargs)

    def _step_runner(self, name: str) -> StepRunner:
        check_step_name(name)
        outer = current_step()
        if outer is not None:
            raise StepMisused(
                f"step {name!r} was called inside step {outer!r} of task {self.job.task}: "
                "steps do not nest (the inner one would commit apart from the outer one's "
                "transaction); call both from the task, one after the other"
            )
        if _job_session.get() is not None:
            raise StepMisused(
                f"task {self.job.task} takes a session and called step {name!r}: a task "
                "that runs steps has no session of its own (its open transaction would hold "
                "locks, on SQLite the write lock, that its steps wait for). Remove the "
                "task's session parameter and do its writes in steps, whose functions take "
                "a session"
            )
        if self._steps is None:
            raise StepMisused(
                f"step {name!r}: this JobContext belongs to no running attempt (steps run "
                "inside a task that sqljobs runs)"
            )
        return self._steps
