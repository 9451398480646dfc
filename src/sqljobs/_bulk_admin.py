"""Bulk operations and queue pausing: the part of the :class:`~sqljobs.JobQueue` facade that
retries, cancels or deletes every job matching a filter (in bounded batches, each its own
short transaction) and pauses or resumes a queue for every worker."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import events
from .events import EventBus
from .jobs import Job, JobState
from .store import JobFilters, JobStore
from .store._bulk import MAX_BATCH, BulkAction

_ALL = [s.value for s in JobState]
#: Per action: the states it may touch, and those it touches when no state is given.
ALLOWED_STATES: dict[str, list[str]] = {
    "retry": [s for s in _ALL if s != JobState.RUNNING.value],
    "cancel": ["scheduled", "available", "retryable", "running"],
    "delete": [s for s in _ALL if s != JobState.RUNNING.value],
}
DEFAULT_STATES: dict[str, list[str]] = {
    "retry": ["discarded", "cancelled"],
    "cancel": ["scheduled", "available", "retryable"],
    "delete": ["completed", "discarded", "cancelled"],
}
_DONE = {"retry": "retried", "cancel": "cancelled", "delete": "deleted"}
_REFUSED_WHY = {
    "retry": "a running job is held by a worker: cancel it first, or wait until it finishes",
    "delete": "a running job is held by a worker: cancel it first, then delete it",
    "cancel": "it is finished already: retry or delete it instead",
}


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What :meth:`~sqljobs.JobQueue.bulk` did (or, with ``dry_run``, would do).

    ``matched``: jobs matching the filter when the operation started (the dry run's count).
    ``changed``: the ids it retried, cancelled or deleted. ``skipped``: jobs that still
    matched but were left alone, with the reason (a retried unique job whose key another job
    holds, secrets erased). A job that stopped matching between the count and its batch (a
    worker claimed it, it finished) is in neither.
    """

    action: str
    dry_run: bool
    matched: int
    changed: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    batches: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            "matched": self.matched,
            "changed": len(self.changed),
            "skipped": {str(k): v for k, v in self.skipped.items()},
            "batches": self.batches,
        }


def bulk_states(action: str, states: Sequence[JobState | str] | None) -> list[str]:
    """The states ``action`` touches for the filter's ``states``; a state it may not touch
    raises ``ValueError`` saying why."""
    if action not in ALLOWED_STATES:
        raise ValueError(f"unknown bulk action {action!r}: choose retry, cancel or delete")
    if not states:
        return DEFAULT_STATES[action]
    chosen = []
    for state in states:
        try:
            value = JobState(state).value
        except ValueError:
            raise ValueError(f"unknown state {state!r}; choose from {', '.join(_ALL)}") from None
        if value not in ALLOWED_STATES[action]:
            raise ValueError(
                f"{value} jobs cannot be {_DONE[action]} in bulk: {_REFUSED_WHY[action]} "
                f"(allowed: {', '.join(ALLOWED_STATES[action])})"
            )
        chosen.append(value)
    return chosen


def _check_filter(filters: JobFilters, batch_size: int) -> None:
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}, got {batch_size}")
    for name in ("queue", "task", "error_type"):
        text = getattr(filters, name)
        if text is not None and (not isinstance(text, str) or "\x00" in text):
            raise ValueError(f"{name} must be a string without NUL characters, got {text!r}")
    for name in ("created_after", "created_before"):
        moment = getattr(filters, name)
        if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
            raise ValueError(
                f"{name} must be an aware datetime (e.g. datetime.now(timezone.utc)), "
                f"got {moment!r}"
            )
    after, before = filters.created_after, filters.created_before
    if after is not None and before is not None and after >= before:
        raise ValueError(
            f"created_after ({after.isoformat()}) must be before created_before "
            f"({before.isoformat()}): the time range is empty"
        )


class BulkAdministration:
    """Mixed into :class:`~sqljobs.JobQueue`, which provides the store, the event bus, the
    wake-up of its workers and the unique key rebuild of a retried job."""

    store: JobStore
    events: EventBus

    def _wake(self, ids: Sequence[int]) -> None:
        raise NotImplementedError

    def _key_to_restore(self, job: Job) -> str | None:
        raise NotImplementedError

    def bulk(
        self,
        action: BulkAction,
        *,
        state: JobState | str | Iterable[JobState | str] | None = None,
        queue: str | None = None,
        task: str | None = None,
        error_type: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        dry_run: bool = False,
        batch_size: int = 200,
    ) -> BulkResult:
        """Retry, cancel or delete every job matching a filter; ``dry_run`` only counts them.

        The filter: ``state`` (one or several; default per action: retry discarded and
        cancelled jobs, cancel scheduled, available and retryable ones, delete finished ones),
        ``queue``, ``task``, ``error_type`` (the type of the job's last recorded error) and
        a creation time range ``[created_after, created_before)``. Running jobs can only be
        cancelled, and only when ``state`` names ``running``.

        Jobs are changed in batches of at most ``batch_size``, each in its own short
        transaction that re-checks the filter on the rows it locks: a job a worker claimed or
        finished since the count is left as it is, and each job is changed at most once.
        Jobs enqueued after the call started are not touched.

        Example:
            >>> jobs.bulk("retry", task="send_mail", error_type="SMTPError", dry_run=True)
            ... # doctest: +SKIP
            BulkResult(action='retry', dry_run=True, matched=1250, ...)
        """
        states = [state] if isinstance(state, (str, JobState)) else state
        chosen = bulk_states(action, list(states) if states is not None else None)
        filters = JobFilters(
            states=chosen,
            queue=queue,
            task=task,
            created_after=created_after,
            created_before=created_before,
            error_type=error_type,
        )
        _check_filter(filters, batch_size)
        ceiling = self.store.newest_job_id()
        matched = self.store.count_matching(filters, chosen)
        if dry_run:
            return BulkResult(action=action, dry_run=True, matched=matched)
        changed: list[int] = []
        skipped: dict[int, str] = {}
        batches = 0
        after = 0
        while True:
            ids = self.store.next_candidates(
                filters, chosen, after=after, upto=ceiling, limit=batch_size
            )
            if not ids:
                break
            after = ids[-1]
            batches += 1
            outcome = self.store.apply_batch(
                action,
                ids,
                filters,
                chosen,
                unique_key_of=self._key_to_restore if action == "retry" else None,
            )
            changed += [job.id for job in outcome.changed]
            skipped.update(outcome.skipped)
            self._report(action, outcome.changed)
        return BulkResult(
            action=action,
            dry_run=False,
            matched=matched,
            changed=changed,
            skipped=skipped,
            batches=batches,
        )

    def _report(self, action: str, changed: list[Job]) -> None:
        if action == "retry":
            for job in changed:
                self.events.emit(events.JOB_RETRIED, job=job)
            if changed:
                self._wake([job.id for job in changed])
        elif action == "cancel":
            for job in changed:
                self.events.emit(events.JOB_CANCELLED, job=job, outcome=None, duration=None)

    def pause_queue(self, name: str) -> None:
        """Stop every worker claiming jobs of queue ``name`` (enqueues go on as usual).

        Stored in the database: each running worker stops within one poll interval (it
        re-reads queue settings at least that often); jobs it claimed before run to the end.

        Example:
            >>> jobs.pause_queue("mail")  # doctest: +SKIP
        """
        self.store.set_paused(_queue_name(name), True)

    def resume_queue(self, name: str) -> None:
        """Let workers claim queue ``name``'s jobs again (see :meth:`pause_queue`)."""
        self.store.set_paused(_queue_name(name), False)

    def paused_queues(self) -> list[str]:
        """The names of the paused queues, sorted."""
        return self.store.paused_queues()


def _queue_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or "\x00" in name or len(name) > 100:
        raise ValueError(
            f"a queue name is a non-empty string of at most 100 characters without NUL, "
            f"got {name!r}"
        )
    return name
