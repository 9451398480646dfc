"""Read models shared by the CLI, the REST API and the dashboard (no web framework here).

Each function is a few :class:`~sqljobs.store.JobStore` reads turned into plain values:
per-queue counts by state with the backlog's age, throughput over time, and the parsing of
ages such as ``"15m"`` that filters accept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._utils import utcnow
from .exceptions import JobNotFound, SecretsErased, SqljobsError, StoreError, UniqueKeyConflict
from .jobs import FINISHED_STATES, Job, JobState

if TYPE_CHECKING:
    from .jobqueue import JobQueue

#: States in the order the dashboard and CLI show them.
STATE_ORDER: tuple[JobState, ...] = (
    JobState.BLOCKED,
    JobState.SCHEDULED,
    JobState.AVAILABLE,
    JobState.RUNNING,
    JobState.RETRYABLE,
    JobState.COMPLETED,
    JobState.DISCARDED,
    JobState.CANCELLED,
)
#: The finished states throughput is counted in.
THROUGHPUT_STATES: tuple[JobState, ...] = tuple(s for s in STATE_ORDER if s in FINISHED_STATES)

_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """Parse ``"90"`` (seconds), ``"90s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"`` or
    combinations such as ``"1h30m"``.

    Raises:
        ValueError: the text is not such an age.
    """
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError("an age must not be empty (try 30s, 15m, 2h or 7d)")
    seconds = 0.0
    position = 0
    for match in _AGE.finditer(cleaned):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(cleaned):
        raise ValueError(f"{text!r} is not an age (try 30s, 15m, 2h or 7d)")
    return timedelta(seconds=seconds)


def format_age(delta: timedelta | float) -> str:
    """``timedelta(seconds=4000)`` -> ``"1h 6m"``: short, for tables."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 0:
        seconds = 0
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec}s" if sec else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """Counts of one queue's jobs by state, and how long its oldest available job has waited."""

    queue: str
    counts: dict[JobState, int]
    oldest_available: datetime | None = None
    #: False when the queue has waiting jobs and no live worker serves it: they never run.
    served: bool = True
    #: Workers do not claim its jobs (``jobs.pause_queue``); enqueues go on.
    paused: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count(self, state: JobState) -> int:
        return self.counts.get(state, 0)

    def backlog_age(self, now: datetime) -> timedelta | None:
        return None if self.oldest_available is None else now - self.oldest_available


@dataclass(frozen=True, slots=True)
class Overview:
    """Every queue's summary, the totals over all queues and the live workers."""

    at: datetime
    queues: list[QueueSummary]
    totals: dict[JobState, int]
    workers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unserved(self) -> list[QueueSummary]:
        """Queues with waiting jobs that no live worker serves."""
        return [q for q in self.queues if not q.served]


#: A worker silent for longer than this (it heartbeats every 2 s at most) is not counted as
#: serving its queues; its row is pruned later, after four leases.
LIVE_WORKER_SILENCE = timedelta(seconds=60)
#: The states of jobs that wait for a worker.
WAITING_STATES: tuple[JobState, ...] = (JobState.SCHEDULED, JobState.AVAILABLE, JobState.RETRYABLE)


def overview(jobs: JobQueue) -> Overview:
    """Read counts per queue and state (plus queues that only have registered tasks), the
    live workers, and which queues with waiting jobs none of them serves."""
    counts = jobs.store.count_by_state()
    oldest = jobs.store.oldest_available()
    workers = jobs.store.list_workers()
    paused = set(jobs.store.paused_queues())
    now = utcnow()
    served = {
        name
        for w in workers
        if now - w["heartbeat_at"] <= LIVE_WORKER_SILENCE
        for name in str(w["queues"]).split(",")
    }
    names = sorted({q for q, _ in counts} | set(jobs.registry.queues()) | paused)
    queues = []
    for name in names:
        by_state = {s: counts.get((name, s), 0) for s in STATE_ORDER}
        waiting = any(by_state[s] for s in WAITING_STATES)
        queues.append(
            QueueSummary(
                queue=name,
                counts=by_state,
                oldest_available=oldest.get(name),
                served=name in served or not waiting,
                paused=name in paused,
            )
        )
    totals = {s: sum(q.count(s) for q in queues) for s in STATE_ORDER}
    return Overview(at=now, queues=queues, totals=totals, workers=workers)


def unserved_warning(queue: QueueSummary) -> str:
    waiting = sum(queue.count(s) for s in WAITING_STATES)
    return (
        f"queue {queue.queue!r} has {waiting} waiting job(s) and no live worker serves it: "
        f"start a worker with this queue (sqljobs worker APP --queues {queue.queue}, or "
        f"jobs.worker(queues=[...])), or enqueue to a queue a worker serves"
    )


@dataclass(frozen=True, slots=True)
class Throughput:
    """Finished jobs per interval: ``points[i]`` covers ``[start + i*bucket, +bucket)``."""

    start: datetime
    bucket: timedelta
    points: list[dict[JobState, int]]


def throughput(jobs: JobQueue, *, window: timedelta, buckets: int) -> Throughput:
    """Finished jobs per state over the last ``window``, in ``buckets`` equal intervals
    aligned to whole seconds and ending now."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    bucket = timedelta(seconds=max(1, round(window.total_seconds() / buckets)))
    now = utcnow()
    end = now.replace(microsecond=0) + timedelta(seconds=1)
    start = end - bucket * buckets
    points = jobs.store.throughput(since=start, bucket=bucket, buckets=buckets)
    return Throughput(start=start, bucket=bucket, points=points)


class ActionRefused(SqljobsError):
    """The job is in a state where this action makes no sense (e.g. retrying a running job)."""


def retry_job(jobs: JobQueue, job_id: int) -> Job:
    """Run a job again now; refused while it runs. Raises JobNotFound / ActionRefused."""
    job = jobs.get(job_id)
    if job.state is JobState.RUNNING:
        raise ActionRefused(f"job {job_id} is running; wait for it to finish or cancel it")
    try:
        return jobs.retry(job_id)
    except JobNotFound:
        raise
    except (UniqueKeyConflict, SecretsErased) as exc:
        raise ActionRefused(str(exc)) from None
    except StoreError:
        if jobs.get(job_id).state is JobState.RUNNING:  # claimed since we looked
            raise ActionRefused(f"job {job_id} is running; wait for it to finish") from None
        raise


def cancel_job(jobs: JobQueue, job_id: int) -> Job:
    """Cancel a job that has not finished. Raises JobNotFound / ActionRefused."""
    job = jobs.get(job_id)
    if job.state.is_finished:
        raise ActionRefused(f"job {job_id} is already {job.state.value}")
    cancelled = jobs.cancel(job_id)
    if cancelled.state is not JobState.CANCELLED:  # it finished since we looked
        raise ActionRefused(f"job {job_id} is already {cancelled.state.value}")
    return cancelled


def delete_job(jobs: JobQueue, job_id: int) -> Job:
    """Delete a job that is not running; returns its last snapshot."""
    job = jobs.get(job_id)
    if job.state is JobState.RUNNING:
        raise ActionRefused(f"job {job_id} is running; cancel it before deleting it")
    try:
        return jobs.store.delete_job(job_id)
    except JobNotFound:
        raise
    except StoreError:
        if jobs.get(job_id).state is JobState.RUNNING:
            raise ActionRefused(f"job {job_id} is running; cancel it first") from None
        raise
