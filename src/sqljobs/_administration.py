"""Inspection and administration of a queue's jobs: the part of the :class:`~sqljobs.JobQueue`
facade that reads and changes existing jobs (get, list, counts, retry, cancel, prune, limits)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from . import events
from ._utils import Duration, to_timedelta
from .events import EventBus
from .exceptions import ConfigurationError, UniqueKeyConflict
from .flow import DEBOUNCE_SCOPE
from .job_logs import JobLogLine
from .jobs import Job, JobState
from .registry import Task, TaskRegistry
from .steps import JobStep
from .store import JobStore


class QueueAdministration:
    """Mixed into :class:`~sqljobs.JobQueue`, which provides the store, the event bus and
    the wake-up of its workers."""

    store: JobStore
    events: EventBus
    registry: TaskRegistry

    def _wake(self, ids: Sequence[int]) -> None:
        raise NotImplementedError

    def create_schema(self) -> None:
        """Create the job tables if missing (for quick starts; use Alembic in production)."""
        self.store.create_schema()

    def drop_schema(self) -> None:
        self.store.drop_schema()

    def get(self, job_id: int) -> Job:
        """A snapshot of one job (state, attempts, errors, result)."""
        return self.store.get(job_id)

    def steps(self, job_id: int) -> list[JobStep]:
        """The durable steps job ``job_id`` ran (``ctx.step``), in the order it called them:
        name, state, attempts, result, last error, times and duration. Empty for a job
        without steps (or no such job: use :meth:`get` to tell). Example::

            for step in jobs.steps(job_id):
                print(step.name, step.state, step.attempts, step.duration)
        """
        return self.store.steps_of(job_id)

    def logs(self, job_id: int) -> list[JobLogLine]:
        """The log lines job ``job_id``'s attempts emitted (``ctx.logger`` and ``logging``
        calls in the task's thread; docs/logs.md), by attempt and order. Empty for a job
        that logged nothing (or no such job: use :meth:`get` to tell). Example::

            for line in jobs.logs(job_id):
                print(line.attempt, line.level, line.logger, line.message)
        """
        return self.store.logs_of(job_id)

    def list_jobs(
        self,
        *,
        state: JobState | str | Iterable[JobState | str] | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        """Jobs, newest first, filtered by state(s), queue and task name."""
        states = [state] if isinstance(state, (str, JobState)) else state
        return self.store.list_jobs(
            states=states, queue=queue, task=task, limit=limit, offset=offset
        )

    def counts(self) -> dict[tuple[str, JobState], int]:
        """Number of jobs per ``(queue, state)``."""
        return self.store.count_by_state()

    def retry(self, job_id: int) -> Job:
        """Run a discarded, cancelled or waiting job again now.

        A unique job gets its unique key back. If another live job holds that key (it was
        enqueued after this one finished), nothing changes and
        :class:`~sqljobs.exceptions.UniqueKeyConflict` names that job.
        """
        job = self.store.retry(job_id, unique_key=self._key_to_restore(self.store.get(job_id)))
        self.events.emit(events.JOB_RETRIED, job=job)
        self._wake([job_id])
        return job

    def _key_to_restore(self, job: Job) -> str | None:
        """The unique key ``job`` held while live, if its row no longer holds it. The row
        keeps only the scope, so the key is rebuilt from the task's Unique rule, its
        arguments and its enqueue time."""
        if job.unique_scope in (None, DEBOUNCE_SCOPE) or job.unique_key is not None:
            return None  # a debounced job retried runs as a plain job: nothing to collapse into
        task: Task[..., Any] | None = self.registry.get(job.task)
        if task is None or task.unique is None:
            why = (
                f"its task {job.task} is not registered in this process"
                if task is None
                else "it was enqueued with an explicit unique_key=, which is not kept"
            )
            raise UniqueKeyConflict(
                f"job {job.id} was not retried: it was unique, but {why}, so it could become "
                "a second live job with the same key. Retry it where its task is registered, "
                "or enqueue it again with its unique_key",
                job_id=job.id,
            )
        args = job.args if isinstance(job.args, dict) else {}
        return task.unique_key_of(args, job.created_at)

    def cancel(self, job_id: int) -> Job:
        """Cancel a job: a waiting one never starts, a running one can no longer commit."""
        job = self.store.cancel(job_id)
        self.events.emit(events.JOB_CANCELLED, job=job, outcome=None, duration=None)
        return job

    def prune(self, *, older_than: Duration, states: Iterable[JobState | str] | None = None) -> int:
        """Delete finished jobs older than ``older_than``; returns how many."""
        # A finished job still owing its dependents their settlement settles first.
        self.store.settle_finished()
        pruned = self.store.prune(
            older_than=to_timedelta(older_than, name="older_than"), states=states
        )
        self.store.prune_graph_rows()
        return pruned

    def configure_queue(
        self,
        name: str,
        *,
        global_limit: int | None = None,
        rate_limit: tuple[int, Duration] | None = None,
    ) -> None:
        """Limit a queue across all workers: at most ``global_limit`` of its jobs run at once,
        at most ``rate_limit=(n, period)`` start per period. Stored in the database; workers
        pick changes up within seconds. Call again with ``None`` to lift a limit.

        Example:
            >>> jobs.configure_queue("mail", global_limit=2, rate_limit=(100, 60))  # doctest: +SKIP
        """
        if global_limit is not None and global_limit < 1:
            raise ConfigurationError("global_limit must be at least 1 (or None for no limit)")
        count, period = rate_limit if rate_limit is not None else (None, None)
        if count is not None and count < 1:
            raise ConfigurationError("a rate limit allows at least 1 job per period")
        self.store.configure_queue(
            name,
            global_limit=global_limit,
            rate_limit=count,
            rate_period=None if period is None else to_timedelta(period, name="rate period"),
        )

    def wait(self, job_id: int, *, timeout: Duration = 30.0, poll: float = 0.05) -> Job:
        """Block until the job is finished (or ``timeout`` passes); return its snapshot."""
        deadline = time.monotonic() + to_timedelta(timeout, name="timeout").total_seconds()
        while True:
            job = self.get(job_id)
            if job.state.is_finished or time.monotonic() >= deadline:
                return job
            time.sleep(poll)
