"""Runs the durable steps of ONE attempt (``ctx.step`` / ``ctx.astep``).

Per step: check the call against the job's stored steps (a completed one returns its stored
result and does not run), record its start (conditional on the lease), run it in a session
and transaction of its own, and commit its writes, its result and the lease check together.
A step that raises records its error (conditional on the lease, never over a completed step)
and re-raises into the task. See docs/workflows.md for the rules this enforces.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from ..context import JOB_SESSION_INFO, running_with_session
from ..exceptions import (
    ConfigurationError,
    JobSessionMisused,
    LeaseLost,
    SerializationError,
    StepMismatch,
    StepMisused,
)
from ..instrumentation import Hooks
from ..jobs import Job
from ..steps import JobStep, StepCodec, StepState, running_step, takes_session
from ..store import JobStore, begin_write, current_binding
from ._job_session import SessionGuard
from ._loops import attempt_session

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

log = logging.getLogger("sqljobs.steps")
T = TypeVar("T")


def _lease_lost(job: Job, name: str) -> LeaseLost:
    return LeaseLost(
        f"step {name!r} of job {job.id}: this attempt no longer holds the job's lease (it was "
        "rescued, cancelled or finished meanwhile), so the step's writes were rolled back; "
        "the attempt that holds the job now runs it"
    )


class AttemptSteps:
    """The step runner of one attempt of ``job`` (see :class:`sqljobs.steps.StepRunner`)."""

    def __init__(
        self,
        *,
        job: Job,
        store: JobStore,
        session_factory: sessionmaker[Any],
        async_session_factory: async_sessionmaker[Any] | None,
        async_task: bool = False,
        hooks: Hooks | None = None,
    ) -> None:
        self._hooks = hooks if hooks is not None else Hooks()
        self._job = job
        self._async_task = async_task
        self._store = store
        self._session_factory = session_factory
        self._async_session_factory = async_session_factory
        self._lock = threading.Lock()
        self._stored: dict[str, JobStep] | None = None
        self._called: set[str] = set()
        self._position = 0
        self._running: str | None = None

    # -- the rules -----------------------------------------------------------------------

    @contextmanager
    def _turn(self, name: str) -> Iterator[tuple[int, JobStep | None]]:
        """Take the next position for step ``name``: its completed record if it has one."""
        with self._lock:
            if self._running is not None:
                raise StepMisused(
                    f"step {name!r} was called while step {self._running!r} of the same job "
                    "still ran: a job's steps run one after another (their order is what a "
                    "retry replays), so await or join each step before the next"
                )
            if name in self._called:
                raise StepMisused(
                    f"step name {name!r} was used twice in job {self._job.id} "
                    f"({self._job.task}): a step's name identifies its stored result, so give "
                    f"each call its own name (e.g. f'{name}-{{i}}' in a loop)"
                )
            stored = self._stored
            position = self._position
            self._called.add(name)
            self._position += 1
            self._running = name
        try:
            if stored is None:
                loaded = self._store.load_steps(self._job)
                stored = self._stored = {step.name: step for step in loaded}
            yield position, self._check_order(stored, name, position)
        finally:
            with self._lock:
                self._running = None

    def _check_order(self, stored: dict[str, JobStep], name: str, position: int) -> JobStep | None:
        done = stored.get(name)
        if done is not None and done.state is not StepState.COMPLETED:
            done = None
        if done is not None and done.position != position:
            raise self._mismatch(name, position, f"{name!r} completed as step {done.position}")
        other = next(
            (
                step
                for step in stored.values()
                if step.position == position and step.state is StepState.COMPLETED
            ),
            None,
        )
        if other is not None and other.name != name:
            raise self._mismatch(name, position, f"step {position} completed as {other.name!r}")
        return done

    def _mismatch(self, name: str, position: int, stored: str) -> StepMismatch:
        return StepMismatch(
            f"job {self._job.id} ({self._job.task}) called step {name!r} as step {position}, "
            f"but an earlier attempt stored {stored}: the task calls its steps in another "
            "order than the run that stored them (code that depends on time, randomness or "
            "data read outside steps, or a deploy that changed the task). Make the order of "
            "steps depend only on the job's arguments and earlier steps' results; a task whose "
            "steps change between versions needs a new task name. The job is discarded"
        )

    # -- sync steps ----------------------------------------------------------------------

    def run(self, name: str, func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(func):
            raise StepMisused(
                f"step {name!r}: {getattr(func, '__name__', func)!r} is async def; in a sync "
                "task give ctx.step a sync function (async tasks use await ctx.astep)"
            )
        if self._async_task:
            raise StepMisused(
                f"step {name!r} was called with ctx.step inside an async task: use "
                f"await ctx.astep({name!r}, ...), which does not block the event loop"
            )
        return self._run_sync(name, func, kwargs)

    def _run_sync(self, name: str, func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        codec = StepCodec.of(func)
        with self._turn(name) as (position, done):
            if done is not None:
                return codec.decode(done.result)
            if not self._store.start_step(self._job, name, position):
                raise _lease_lost(self._job, name)
            started = time.monotonic()
            try:
                with self._hooks.current.step(self._job, name), running_step(name):
                    if takes_session(func):
                        stored = self._run_in_session(name, func, kwargs, codec, started)
                    else:
                        stored = self._encode(name, codec, func(**kwargs))
                        duration = time.monotonic() - started
                        if not self._store.finish_step_alone(self._job, name, stored, duration):
                            raise _lease_lost(self._job, name)
            except BaseException as exc:
                self._record_failure(name, exc, time.monotonic() - started)
                raise
            return codec.decode(stored)

    def _run_in_session(
        self,
        name: str,
        func: Callable[..., Any],
        kwargs: dict[str, Any],
        codec: StepCodec,
        started: float,
    ) -> Any:
        binding = current_binding()
        session: Session = (
            self._session_factory()
            if binding is None  # else a test's transaction: a savepoint of it
            else self._session_factory(
                bind=binding.connection, join_transaction_mode="create_savepoint"
            )
        )
        session.info[JOB_SESSION_INFO] = True
        guard = SessionGuard(session, self._job.task)
        try:
            connection = session.connection()
            if self._store.support.single_writer and binding is None:
                begin_write(connection)
            with running_with_session(self._store.engine, session):
                result = func(session=session, **kwargs)
            guard.stop()
            self._check_guard(name, guard)
            stored = self._encode(name, codec, result)
            duration = time.monotonic() - started
            if not self._store.finish_step(session, self._job, name, stored, duration):
                session.rollback()
                raise _lease_lost(self._job, name)
            session.commit()
            return stored
        except BaseException:
            guard.stop()
            _safely(session.rollback)
            raise
        finally:
            _safely(session.close)

    # -- async steps ---------------------------------------------------------------------

    async def run_async(self, name: str, func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        if not inspect.iscoroutinefunction(func):
            # A sync step in an async task: in a thread, with a sync session.
            return await _off_loop(self._run_sync, name, func, kwargs)
        codec = StepCodec.of(func)
        wants_session = takes_session(func)
        if wants_session and self._async_session_factory is None:
            raise ConfigurationError(
                f"step {name!r} is async def and takes a session, but the JobQueue has no "
                "async_session_factory: pass JobQueue(..., async_session_factory=...) (or "
                "build the queue with sqljobs.aio.job_queue)"
            )
        with self._turn(name) as (position, done):
            if done is not None:
                return codec.decode(done.result)
            held = await _off_loop(self._store.start_step, self._job, name, position)
            if not held:
                raise _lease_lost(self._job, name)
            started = time.monotonic()
            try:
                with self._hooks.current.step(self._job, name), running_step(name):
                    if wants_session:
                        stored = await self._run_in_async_session(
                            name, func, kwargs, codec, started
                        )
                    else:
                        stored = self._encode(name, codec, await func(**kwargs))
                        duration = time.monotonic() - started
                        finished = await _off_loop(
                            self._store.finish_step_alone, self._job, name, stored, duration
                        )
                        if not finished:
                            raise _lease_lost(self._job, name)
            except BaseException as exc:
                duration = time.monotonic() - started
                try:
                    await _off_loop(self._record_failure, name, exc, duration)
                except BaseException:  # cancelled again while recording: best effort
                    log.warning("could not record step %r's failure", name, exc_info=True)
                raise
            return codec.decode(stored)

    async def _run_in_async_session(
        self,
        name: str,
        func: Callable[..., Any],
        kwargs: dict[str, Any],
        codec: StepCodec,
        started: float,
    ) -> Any:
        session = attempt_session(self._async_session_factory, f"{self._job.task} step {name!r}")
        session.sync_session.info[JOB_SESSION_INFO] = True
        guard = SessionGuard(session.sync_session, self._job.task)
        try:
            connection = await session.connection()
            if self._store.support.single_writer and current_binding() is None:
                await connection.run_sync(begin_write)
            with running_with_session(self._store.engine, session):
                result = await func(session=session, **kwargs)
            guard.stop()
            self._check_guard(name, guard)
            stored = self._encode(name, codec, result)
            duration = time.monotonic() - started
            finished = await session.run_sync(
                lambda sync: self._store.finish_step(sync, self._job, name, stored, duration)
            )
            if not finished:
                await session.rollback()
                raise _lease_lost(self._job, name)
            await session.commit()
            return stored
        except BaseException:
            guard.stop()
            try:
                await session.rollback()
            except Exception:
                log.warning("rollback of step %r's session failed", name, exc_info=True)
            raise
        finally:
            try:
                await session.close()
            except Exception:
                log.warning("closing step %r's session failed", name, exc_info=True)

    # -- shared --------------------------------------------------------------------------

    def _check_guard(self, name: str, guard: SessionGuard) -> None:
        if guard.committed:
            raise JobSessionMisused(
                f"step {name!r} of task {self._job.task} committed its session; sqljobs "
                "commits it with the step's result, so the writes it committed would be "
                "repeated by a retry. Remove session.commit() from the step (use "
                "session.flush(), or session.begin_nested() for a savepoint). The job is "
                "discarded"
            )

    def _encode(self, name: str, codec: StepCodec, result: Any) -> Any:
        try:
            return codec.encode(result)
        except SerializationError as exc:
            raise SerializationError(
                f"step {name!r}'s return value cannot be stored: {exc}; return JSON (or a "
                "type its return annotation converts: UUID, datetime, Decimal, Enum, a "
                "dataclass or pydantic model)"
            ) from None

    def _record_failure(self, name: str, exc: BaseException, duration: float) -> None:
        """Record the step's error, best effort: the task gets the step's own error."""
        from ._executor import error_record  # the executor imports this module

        if isinstance(exc, LeaseLost):
            return  # nothing may be recorded by this attempt
        try:
            self._store.fail_step(self._job, name, error_record(self._job, exc), duration)
        except Exception:
            log.warning(
                "job %s: could not record the failure of step %r", self._job.id, name, exc_info=True
            )


async def _off_loop(func: Callable[..., T], *args: Any) -> T:
    """Run sync ``func`` (bookkeeping, a sync step) without blocking the event loop: in a
    thread; or, when the store is bound to a test's async connection, in a greenlet on this
    loop (that connection is used only from its own greenlets)."""
    if current_binding() is not None:
        from sqlalchemy.util import greenlet_spawn

        return await greenlet_spawn(func, *args)
    return await asyncio.to_thread(func, *args)


def _safely(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:
        log.warning("cleaning up a step session failed", exc_info=True)
