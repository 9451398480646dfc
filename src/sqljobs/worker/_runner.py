"""claim → execute → persist for one job, shared by the threaded Worker and ``drain()``."""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

from .. import events
from .._utils import utcnow
from ..context import JobContext
from ..events import EventBus
from ..exceptions import StoreError
from ..instrumentation import Hooks
from ..job_logs import AttemptLog, capturing
from ..jobs import Job, JobError
from ..store import JobStore
from ._executor import Executor
from ._outcomes import Cancelled, Completed, Failed, LeaseLost, Outcome, Snoozed
from ._watch import AttemptWatch

log = logging.getLogger("sqljobs.worker")

#: The job whose task runs here (this thread, or the async task it started), if any.
_running_job: ContextVar[Job | None] = ContextVar("sqljobs_running_job", default=None)


def running_job() -> Job | None:
    """The job being executed in this context (its task, or its session's commit)."""
    return _running_job.get()


class JobRunner:
    def __init__(
        self, *, store: JobStore, executor: Executor, bus: EventBus, hooks: Hooks | None = None
    ) -> None:
        self._store = store
        self._executor = executor
        self._bus = bus
        self._hooks = hooks if hooks is not None else Hooks()

    def run(self, job: Job) -> Outcome:
        """Execute ``job`` and store its outcome (and last progress). Store errors propagate
        (the lease then expires and the job is rescued)."""
        if not self.start(job):
            return LeaseLost()
        ctx = JobContext(job)
        outcome, duration = self.execute(job, ctx)
        stored = self.persist(job, outcome, duration)
        progress = ctx.take_progress()
        if progress is not None:
            self._store.save_progress(job.id, *progress)
        return stored

    def start(self, job: Job) -> bool:
        """Record the attempt's start; False (do not run it) if the job was cancelled,
        rescued or released since its claim. Store errors propagate."""
        if self._store.mark_started(job):
            return True
        log.info("job %s (%s) was cancelled or taken back before it started", job.id, job.task)
        return False

    def execute(
        self, job: Job, ctx: JobContext | None = None, watch: AttemptWatch | None = None
    ) -> tuple[Outcome, float]:
        """Run the task; nothing is stored yet unless its own session committed it (its
        log lines are: in a transaction of their own, once it ended)."""
        self._bus.emit(events.JOB_STARTED, job=job)
        started = time.monotonic()
        token = _running_job.set(job)
        limits = self._hooks.log_limits
        lines = AttemptLog(job_id=job.id, attempt=job.attempt, limits=limits) if limits else None
        try:
            with self._hooks.current.attempt(job) as scope:
                if lines is None:
                    outcome = self._executor.execute(job, ctx, watch)
                else:
                    with capturing(lines):
                        outcome = self._executor.execute(job, ctx, watch)
                scope.ended(outcome_name(outcome), *_error_of(outcome))
        finally:
            _running_job.reset(token)
        duration = time.monotonic() - started
        if lines is not None:
            self._save_logs(job, lines)
        return outcome, duration

    def _save_logs(self, job: Job, lines: AttemptLog) -> None:
        """Store the attempt's log lines; a failure to do so costs the lines, not the job."""
        try:
            self._store.save_logs(job, lines.lines())
        except StoreError as exc:
            log.warning(
                "job %s (%s): the log lines of attempt %s could not be stored: %s",
                job.id,
                job.task,
                job.attempt,
                exc,
            )

    def timed_out(self, job: Job, elapsed: float) -> Outcome:
        """Store that a hung sync attempt was stopped past its timeout (retried by the task's
        policy), conditional on the lease like any outcome."""
        return self.persist(job, self._executor.timed_out(job, elapsed), elapsed)

    def persist(self, job: Job, outcome: Outcome, duration: float) -> Outcome:
        """Store ``outcome`` and report it; :class:`LeaseLost` if the job was taken away.

        A completion the database refuses (a result the checks let through) is recorded as
        the attempt's failure, with the database's error; if that write fails too, the
        StoreError propagates (the database is down: the lease expires, the job is rescued).
        """
        if isinstance(outcome, Completed) and not outcome.persisted:
            try:
                stored_ids = self._store.complete_many([(job, outcome.result)])
            except StoreError as exc:
                log.warning(
                    "job %s (%s): the database refused its result: %s", job.id, job.task, exc
                )
                return self.persist(job, self._executor.failure(job, exc), duration)
            completed: Outcome = outcome if job.id in stored_ids else LeaseLost()
            self._report(job, completed, duration)
            return completed
        stored = outcome if self._persist(job, outcome) else LeaseLost()
        self._report(job, stored, duration)
        return stored

    def persist_completions(
        self, done: list[tuple[Job, Completed, float]]
    ) -> list[tuple[Job, Outcome]]:
        """Store many completions of session-less tasks in one transaction, and report them.
        A StoreError leaves all of them unstored (see :meth:`persist` for one by one)."""
        stored = self._store.complete_many([(job, outcome.result) for job, outcome, _ in done])
        reported: list[tuple[Job, Outcome]] = []
        for job, outcome, duration in done:
            final: Outcome = outcome if job.id in stored else LeaseLost()
            self._report(job, final, duration)
            reported.append((job, final))
        return reported

    def _persist(self, job: Job, outcome: Outcome) -> bool:
        if isinstance(outcome, Completed):
            return outcome.persisted  # else stored by persist()
        if isinstance(outcome, Failed):
            return self._store.fail(job, outcome.error, retry_at=outcome.retry_at)
        if isinstance(outcome, Cancelled):
            return self._store.cancel_running(job, outcome.error)
        if isinstance(outcome, Snoozed):
            return self._store.snooze(job, outcome.run_at, note=outcome.note)
        return False

    def _report(self, job: Job, outcome: Outcome, duration: float) -> None:
        fields: dict[str, Any] = {
            "job_id": job.id,
            "task": job.task,
            "queue": job.queue,
            "attempt": job.attempt,
            "duration": round(duration, 6),
        }
        if isinstance(outcome, Completed):
            name, level, text = events.JOB_COMPLETED, logging.INFO, "completed"
        elif isinstance(outcome, Failed):
            fields["error"] = f"{outcome.error.type}: {outcome.error.message}"
            if outcome.retry_at is None:
                name, level, text = (
                    events.JOB_DISCARDED,
                    logging.ERROR,
                    "discarded",
                )
            else:
                fields["retry_at"] = outcome.retry_at.isoformat()
                wait = (outcome.retry_at - utcnow()).total_seconds()
                name, level = events.JOB_FAILED, logging.WARNING
                text = f"failed (retry in {max(wait, 0):.1f}s)"
        elif isinstance(outcome, Cancelled):
            name, level, text = events.JOB_CANCELLED, logging.INFO, "cancelled"
        elif isinstance(outcome, Snoozed):
            name, level, text = events.JOB_SNOOZED, logging.INFO, "snoozed"
        else:
            name, level, text = (
                events.JOB_LEASE_LOST,
                logging.WARNING,
                "lost its lease (cancelled or rescued meanwhile); this attempt was rolled back",
            )
        fields["outcome"] = name.rsplit(".", 1)[-1]
        log.log(
            level,
            "job %s (%s) attempt %s %s after %.3fs%s",
            job.id,
            job.task,
            job.attempt,
            text,
            duration,
            f": {fields['error']}" if "error" in fields else "",
            extra={"sqljobs": fields},
        )
        exception = outcome.exception if isinstance(outcome, Failed) else None
        self._bus.emit(name, job=job, outcome=outcome, duration=duration, exception=exception)


def outcome_name(outcome: Outcome) -> str:
    """``completed``, ``failed`` (will be retried), ``discarded``, ``cancelled``,
    ``snoozed`` or ``lease_lost``: the name of the event the outcome is reported as."""
    if isinstance(outcome, Completed):
        return "completed"
    if isinstance(outcome, Failed):
        return "discarded" if outcome.retry_at is None else "failed"
    if isinstance(outcome, Cancelled):
        return "cancelled"
    if isinstance(outcome, Snoozed):
        return "snoozed"
    return "lease_lost"


def _error_of(outcome: Outcome) -> tuple[JobError | None, BaseException | None]:
    if isinstance(outcome, Failed):
        return outcome.error, outcome.exception
    if isinstance(outcome, Cancelled):
        return outcome.error, None
    return None, None
