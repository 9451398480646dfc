"""drain(): run due jobs one by one in the calling thread, for tests and scripts."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from .._utils import utcnow
from ..jobs import Job
from ..store import JobStore
from ._outcomes import Cancelled, Completed, Failed, LeaseLost, Outcome, Snoozed
from ._runner import JobRunner

#: Lease of a job claimed by drain(): it runs in the calling thread, without heartbeats.
DRAIN_LEASE = timedelta(minutes=5)
#: How far ahead ``include_scheduled`` looks: every job, whatever its ``run_at``.
_FOREVER = timedelta(days=36500)


@dataclass
class DrainResult:
    """What :meth:`JobQueue.drain` ran, by outcome."""

    completed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    discarded: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    snoozed: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(
            map(len, (self.completed, self.failed, self.discarded, self.cancelled, self.snoozed))
        )

    def record(self, job: Job, outcome: Outcome) -> None:
        if isinstance(outcome, Completed):
            self.completed.append(job.id)
        elif isinstance(outcome, Failed):
            (self.failed if outcome.retry_at is not None else self.discarded).append(job.id)
        elif isinstance(outcome, Cancelled):
            self.cancelled.append(job.id)
        elif isinstance(outcome, Snoozed):
            self.snoozed.append(job.id)
        elif isinstance(outcome, LeaseLost):
            pass


def drain(
    *,
    store: JobStore,
    runner: JobRunner,
    known_queues: Callable[[], list[str]],
    queues: Sequence[str] | None = None,
    ids: Sequence[int] | None = None,
    include_scheduled: bool = False,
    max_jobs: int | None = None,
) -> DrainResult:
    """Claim and run one job at a time until none is due (see :meth:`JobQueue.drain`).

    Scheduled and retryable jobs whose time came are staged at the start and whenever no
    job is available, then looked for again: a transaction per job fewer than staging before
    every claim, and the same jobs run (only a retry that came due meanwhile runs after the
    jobs already available, not among them by priority)."""
    worker_id = f"drain:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    chosen = list(queues) if queues else known_queues()
    result = DrainResult()
    put_back: set[int] = set()
    stage = True
    while max_jobs is None or result.total < max_jobs:
        if stage:
            store.stage(until=utcnow() + _FOREVER if include_scheduled else None)
        claimed = store.claim(
            worker_id=worker_id, queues=chosen, limit=1, lease=DRAIN_LEASE, ids=ids
        )
        if not claimed and not stage:
            stage = True  # none available: stage what came due since, and look again
            continue
        stage = False
        if not claimed and not queues:
            # A job that ran may have enqueued into a queue we had not seen yet.
            known = known_queues()
            if set(known) - set(chosen):
                chosen = known
                continue
        if not claimed:
            break
        job = claimed[0]
        if job.id in put_back:  # it does not fit this code: do not loop on it
            store.release([job])
            break
        outcome = runner.run(job)
        if isinstance(outcome, Snoozed) and outcome.note is not None:
            put_back.add(job.id)
        result.record(job, outcome)
    return result
