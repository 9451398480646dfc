"""Runs ONE claimed job in its own Session and maps what happened to an Outcome value.

For a task with a session, the job's completion is written in that same session, so the
task's writes and the completion commit together or not at all. Every other outcome is a
value; the worker persists it in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import UnboundExecutionError
from sqlalchemy.orm import Session, sessionmaker

from .._arguments import storable_text, to_json_value
from .._utils import to_timedelta, utcnow
from ..context import JOB_SESSION_INFO, JobContext, running_with_session
from ..exceptions import (
    ArgumentsDoNotFit,
    Cancel,
    ConfigurationError,
    InvalidArguments,
    JobSessionMisused,
    JobTimeout,
    Retry,
    SecretNotReadable,
    SerializationError,
    Snooze,
    StepMisused,
    TaskNotRegistered,
)
from ..instrumentation import Hooks
from ..jobs import Job, JobError
from ..registry import CONTEXT_PARAMETER, DEFAULT_MAX_ATTEMPTS, Task, TaskRegistry, make_backoff
from ..store import JobStore, begin_write, current_binding, set_sqlite_busy_timeout
from ._job_session import SessionGuard
from ._loops import attempt_session, await_here, can_await_here
from ._outcomes import Cancelled, Completed, Failed, LeaseLost, Outcome, Snoozed
from ._steps import AttemptSteps
from ._watch import AttemptWatch

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from ._async_runner import AsyncRunner

log = logging.getLogger("sqljobs.executor")

_MAX_TRACEBACK = 16_000
_MAX_MESSAGE = 2_000
#: Errors that will fail the same way on every attempt: discard at once.
_PERMANENT = (InvalidArguments, JobSessionMisused, StepMisused)
_FALLBACK_BACKOFF = make_backoff(None)
#: PostgreSQL aborts any statement of the task's transaction that runs past its timeout.
_STATEMENT_TIMEOUT = text("SELECT set_config('statement_timeout', :ms, true)")


def error_record(job: Job, exc: BaseException) -> JobError:
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return JobError(
        attempt=job.attempt,
        at=utcnow(),
        type=f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
        message=storable_text(str(exc)[:_MAX_MESSAGE]),
        traceback=storable_text(trace[-_MAX_TRACEBACK:]),
    )


def map_exception(job: Job, task: Task[..., Any] | None, exc: BaseException) -> Outcome:
    """Turn what a task raised into the outcome the worker will persist."""
    if isinstance(exc, Snooze):
        return Snoozed(run_at=utcnow() + to_timedelta(exc.delay, name="snooze delay"))
    error = error_record(job, exc)
    if isinstance(exc, Cancel):
        return Cancelled(error=error)
    max_attempts = task.max_attempts if task is not None else DEFAULT_MAX_ATTEMPTS
    if isinstance(exc, _PERMANENT) or job.attempt >= min(job.max_attempts, max_attempts):
        return Failed(error=error, retry_at=None, exception=exc)
    if isinstance(exc, Retry) and exc.delay is not None:
        delay = to_timedelta(exc.delay, name="retry delay")
    else:
        backoff = task.backoff if task is not None else _FALLBACK_BACKOFF
        delay = backoff.delay(job.attempt)
    return Failed(error=error, retry_at=utcnow() + delay, exception=exc)


#: A job whose arguments do not fit this worker's task goes back for this long, doubling with
#: each such note on the job, up to :data:`MISFIT_MAX_DELAY` seconds.
MISFIT_DELAY = 5.0
MISFIT_MAX_DELAY = 300.0


def does_not_fit(job: Job, exc: ArgumentsDoNotFit | SecretNotReadable) -> Snoozed:
    """The job's arguments do not fit this worker's version of its task (a parameter added or
    removed by a deploy still rolling out), or its secrets were sealed with a key this worker
    lacks (a key rotation rolling out): back to the queue for another worker, the attempt
    not counted, with a note in its errors. Never discarded (which would erase its secrets):
    an operator sees the notes and cancels or deletes a job no worker will run."""
    kind = type(exc).__name__ if isinstance(exc, SecretNotReadable) else "ArgumentsDoNotFit"
    misfits = sum(1 for error in job.errors if error.type == kind)
    delay = min(MISFIT_DELAY * 2**misfits, MISFIT_MAX_DELAY)
    wanted = (
        "that holds its key" if kind != "ArgumentsDoNotFit" else "whose version of the task fits"
    )
    note = JobError(
        attempt=job.attempt,
        at=utcnow(),
        type=kind,
        message=f"{exc}; back in the queue for {delay:g}s for a worker {wanted} "
        "(attempt not counted)"[:_MAX_MESSAGE],
        traceback="",
    )
    return Snoozed(run_at=utcnow() + timedelta(seconds=delay), note=note)


class Executor:
    """Resolves a job's task, calls it with a fresh session, and reports an Outcome."""

    def __init__(
        self,
        *,
        registry: TaskRegistry,
        store: JobStore,
        session_factory: sessionmaker[Any],
        async_session_factory: async_sessionmaker[Any] | None,
        async_runner: Callable[[], AsyncRunner],
        hooks: Hooks | None = None,
    ) -> None:
        self._hooks = hooks if hooks is not None else Hooks()
        self._registry = registry
        self._store = store
        self._session_factory = session_factory
        self._async_session_factory = async_session_factory
        self._async_runner = async_runner
        async_engine = async_session_factory.kw.get("bind") if async_session_factory else None
        if async_engine is not None and hasattr(async_engine, "sync_engine"):
            # aiosqlite connections wait for the write lock like the sync ones do.
            set_sqlite_busy_timeout(async_engine.sync_engine)

    def failure(self, job: Job, exc: BaseException) -> Outcome:
        """The outcome of ``exc`` for ``job`` (retried by its task's backoff, or discarded),
        for an error met after the task ran (its completion could not be stored)."""
        return map_exception(job, self._registry.get(job.task), exc)

    def execute(
        self, job: Job, ctx: JobContext | None = None, watch: AttemptWatch | None = None
    ) -> Outcome:
        """Run ``job``; with a ``watch`` (in a worker), a sync task's session connection is
        attached to it, so that the watchdog can end it."""
        try:
            task = self._registry[job.task]
            kwargs = task.arguments.bind_stored(job.args)
        except (ArgumentsDoNotFit, SecretNotReadable) as exc:
            return does_not_fit(job, exc)
        except (TaskNotRegistered, InvalidArguments) as exc:
            return map_exception(job, None, exc)
        ctx = ctx or JobContext(job)
        if task.wants_context:
            kwargs[CONTEXT_PARAMETER] = ctx
            ctx.attach_steps(
                AttemptSteps(
                    job=job,
                    store=self._store,
                    session_factory=self._session_factory,
                    async_session_factory=self._async_session_factory,
                    async_task=task.is_async,
                    hooks=self._hooks,
                )
            )
        if task.is_async:
            attempt = self._execute_async(task, job, kwargs, ctx)
            if can_await_here():  # the caller's loop (AsyncSession.commit, adrain): run there
                return await_here(attempt)
            # On sqljobs' own loop, in a copy of this thread's context (call_soon_threadsafe
            # copies it): the attempt's span and log go on with it.
            return self._async_runner().run(attempt)
        if task.wants_session:
            return self._execute_with_session(task, job, kwargs, watch)
        return self._execute_plain(task, job, kwargs)

    def timed_out(self, job: Job, elapsed: float) -> Outcome:
        """The outcome of a sync attempt the watchdog stopped past its timeout."""
        task = self._registry.get(job.task)
        timeout = f" {task.timeout:g}s" if task is not None and task.timeout else ""
        exc = JobTimeout(
            f"task {job.task} was still running after {elapsed:.1f}s, past its{timeout} timeout: "
            "its database connection was ended (its transaction rolled back, its locks "
            "released) and its thread left behind"
        )
        return map_exception(job, task, exc)

    def _execute_plain(self, task: Task[..., Any], job: Job, kwargs: dict[str, Any]) -> Outcome:
        started = time.monotonic()
        try:
            result = task.func(**kwargs)
            _check_timeout(task, started)
            return Completed(result=_stored_result(result), persisted=False)
        except BaseException as exc:
            _reraise_interrupt(exc)
            return map_exception(job, task, exc)

    def _execute_with_session(
        self, task: Task[..., Any], job: Job, kwargs: dict[str, Any], watch: AttemptWatch | None
    ) -> Outcome:
        started = time.monotonic()
        binding = current_binding()
        session = (
            self._session_factory()
            if binding is None
            else self._session_factory(
                bind=binding.connection, join_transaction_mode="create_savepoint"
            )
        )
        session.info[JOB_SESSION_INFO] = True
        guard = SessionGuard(session, task.name)
        try:
            if watch is not None:
                self._attach(session, watch, task)
            # Begun before the task on every database, so a task's session.begin() fails alike.
            connection = session.connection()
            if self._store.support.single_writer and binding is None:
                begin_write(connection)
            if task.timeout is not None and self._store.support.statement_timeout and not binding:
                session.execute(_STATEMENT_TIMEOUT, {"ms": str(int(task.timeout * 1000))})
            with running_with_session(self._store.engine, session):
                result = task.func(session=session, **kwargs)
            guard.stop()
            guard.check()
            _check_timeout(task, started)
            stored = _stored_result(result)
            completed = self._store.complete(session, job, stored)
            # Commit and rollback give the connection back to the pool: the watchdog must
            # not end it from then on.
            _settle(watch)
            if not completed:
                session.rollback()
                return LeaseLost()
            session.commit()
            return Completed(result=stored, persisted=True)
        except BaseException as exc:
            guard.stop()
            if watch is not None:
                watch.settle()
            if watch is None or not watch.ended:
                _safely(session.rollback)
            _reraise_interrupt(exc)
            return map_exception(job, task, guard.explain(exc))
        finally:
            ended = watch.settle() if watch is not None else None
            if watch is not None and watch.ended:
                # Ended from outside: dead and detached from the pool; drop it unused.
                _safely(session.invalidate)
                if ended is not None:
                    self._store.discard_session(ended)
            else:
                _safely(session.close)

    def _attach(self, session: Session, watch: AttemptWatch, task: Task[..., Any]) -> None:
        """Give the watch the session's connection, taken now (the task would take it at its
        first statement): reading its id costs no round trip on the usual drivers."""
        try:
            connection = session.connection()
        except UnboundExecutionError:
            return  # several binds: no single connection to watch
        if not watch.attach(self._store.session_connection(connection)):
            raise JobTimeout(f"task {task.name} was stopped before it started: past its timeout")

    async def _execute_async(
        self, task: Task[..., Any], job: Job, kwargs: dict[str, Any], ctx: JobContext
    ) -> Outcome:
        started = time.monotonic()
        if not task.wants_session:
            try:
                result = await _cancellable(task.func(**kwargs), task.timeout, ctx)
                _check_blocked_timeout(task, job, started)
                return Completed(result=_stored_result(result), persisted=False)
            except BaseException as exc:
                return map_exception(job, task, _describe_async(exc, task, started, ctx))
        try:
            session = attempt_session(self._async_session_factory, task.name)
        except ConfigurationError as exc:
            return map_exception(job, task, exc)
        session.sync_session.info[JOB_SESSION_INFO] = True
        guard = SessionGuard(session.sync_session, task.name)
        try:
            connection = await session.connection()
            if self._store.support.single_writer and current_binding() is None:
                await connection.run_sync(begin_write)
            with running_with_session(self._store.engine, session):
                result = await _cancellable(task.func(session=session, **kwargs), task.timeout, ctx)
            guard.stop()
            guard.check()
            _check_blocked_timeout(task, job, started)
            stored = _stored_result(result)
            completed = await session.run_sync(
                lambda sync_session: self._store.complete(sync_session, job, stored)
            )
            if not completed:
                await session.rollback()
                return LeaseLost()
            await session.commit()
            return Completed(result=stored, persisted=True)
        except BaseException as exc:
            guard.stop()
            try:
                await session.rollback()
            except Exception:
                log.warning("rollback of job %s's session failed", job.id, exc_info=True)
            return map_exception(job, task, guard.explain(_describe_async(exc, task, started, ctx)))
        finally:
            try:
                await session.close()
            except Exception:
                log.warning("closing job %s's session failed", job.id, exc_info=True)


def _settle(watch: AttemptWatch | None) -> None:
    """No more ending from outside; raise if it happened (the connection is dead)."""
    if watch is None:
        return
    watch.settle()
    if watch.ended:
        raise JobTimeout("the attempt's database connection was ended from outside")


def _check_timeout(task: Task[..., Any], started: float) -> None:
    if task.timeout is not None:
        elapsed = time.monotonic() - started
        if elapsed > task.timeout:
            raise JobTimeout(
                f"task {task.name} ran {elapsed:.1f}s, over its {task.timeout:g}s timeout; its "
                "transaction was rolled back"
            )


def _check_blocked_timeout(task: Task[..., Any], job: Job, started: float) -> None:
    """An async task that blocked the event loop (sync code without ``await``) past its
    timeout could not be cancelled: fail it before anything commits, and say why."""
    if task.timeout is not None and time.monotonic() - started > task.timeout:
        log.warning(
            "job %s (%s) blocked the event loop past its %gs timeout (sync code without "
            "await); run blocking code with asyncio.to_thread",
            job.id,
            task.name,
            task.timeout,
        )
        _check_timeout(task, started)


def _stored_result(result: Any) -> Any:
    """The task's return value as it will be stored, checked by the same rules as arguments
    before any write, so an unstorable result fails its own attempt and never a batch."""
    try:
        return to_json_value(result, "result")
    except SerializationError as exc:
        raise SerializationError(f"the task's return value cannot be stored: {exc}") from None


async def _cancellable(awaitable: Awaitable[Any], timeout: float | None, ctx: JobContext) -> Any:
    """Await the task; cancel it when its timeout passes or the job is cancelled."""
    running = asyncio.ensure_future(awaitable)
    loop = asyncio.get_running_loop()

    def cancel() -> None:
        loop.call_soon_threadsafe(running.cancel)

    ctx.on_cancel(cancel)
    return await asyncio.wait_for(running, timeout)


def _describe_async(
    exc: BaseException, task: Task[..., Any], started: float, ctx: JobContext
) -> BaseException:
    if isinstance(exc, asyncio.CancelledError) and ctx.cancelled:
        return Cancel("cancelled while running")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) and task.timeout is not None:
        elapsed = time.monotonic() - started
        if elapsed >= task.timeout:
            return JobTimeout(
                f"task {task.name} was cancelled after {timedelta(seconds=task.timeout)}, its "
                "timeout; its transaction was rolled back"
            )
    return exc


def _reraise_interrupt(exc: BaseException) -> None:
    """Ctrl-C in the main thread (e.g. during ``drain()``) must still stop the program."""
    if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
        raise exc


def _safely(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:
        log.warning("cleaning up a job session failed", exc_info=True)
