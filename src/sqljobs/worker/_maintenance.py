"""Periodic upkeep every live worker performs: rescue jobs whose lease expired, enqueue due
cron slots, prune old finished jobs, forget dead workers. Runs on the worker's heartbeat
thread; never needs a user-written cron."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta

from .. import events
from ..events import EventBus
from ..periodic import Schedule
from ..store import JobStore

log = logging.getLogger("sqljobs.maintenance")


class Maintenance:
    def __init__(
        self,
        store: JobStore,
        *,
        bus: EventBus,
        schedules: Sequence[Schedule] = (),
        prune_after: timedelta | None = None,
        prune_interval: float = 300.0,
    ) -> None:
        self._store = store
        self._bus = bus
        self._schedules = list(schedules)
        self._prune_after = prune_after
        self._prune_interval = prune_interval
        self._next_prune = time.monotonic() + min(prune_interval, 10.0)

    def run_once(self, *, lease: timedelta) -> list[int]:
        """Rescue expired leases, forget silent workers, and prune when it is time."""
        rescued = self._store.rescue()
        for job_id in rescued:
            log.warning("job %s: its worker stopped renewing the lease; rescued", job_id)
            self._bus.emit(events.JOB_RESCUED, job_id=job_id)
        self._store.prune_workers(silent_for=lease * 4)
        # The graphs' safety net: dependencies whose job finished without settling them.
        self._store.settle_finished()
        self.prune_if_due()
        return rescued

    def prune_if_due(self) -> int:
        """Delete finished jobs older than ``prune_after`` once ``prune_interval`` has passed
        since the last prune (checked on every heartbeat, so an interval shorter than the
        rescue interval is kept too); returns how many were deleted."""
        if self._prune_after is None or time.monotonic() < self._next_prune:
            return 0
        self._next_prune = time.monotonic() + self._prune_interval
        pruned = self._store.prune(older_than=self._prune_after)
        self._store.prune_graph_rows()
        if pruned:
            log.info("pruned %d finished job(s) older than %s", pruned, self._prune_after)
        # Rows of keys no unfinished job has, whose rate window began as long ago.
        self._store.prune_keys(idle_for=self._prune_after)
        return pruned

    def enqueue_due(self) -> list[int]:
        """Enqueue the current slot of each periodic task (once per slot across workers)."""
        due = [job for schedule in self._schedules if (job := schedule.due()) is not None]
        if not due:
            return []
        ids = self._store.enqueue(None, due)
        for job, job_id in zip(due, ids, strict=True):
            log.debug("periodic %s: slot %s is job %s", job.task, job.run_at, job_id)
        return ids
