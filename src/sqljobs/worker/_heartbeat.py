"""The heartbeat: renews the leases of held jobs, stores their progress, tells running tasks
that they were cancelled or lost their lease, and runs maintenance (cron, rescue, prune)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from ..exceptions import StoreError
from ..store import JobStore
from ._held import HeldJob, HeldJobs
from ._maintenance import Maintenance
from ._periodic import PeriodicThread

log = logging.getLogger("sqljobs.worker")


class Heartbeat:
    """One thread beating every ``interval`` seconds until :meth:`stop`."""

    def __init__(
        self,
        *,
        worker_id: str,
        store: JobStore,
        held: HeldJobs,
        maintenance: Maintenance,
        lease: timedelta,
        interval: float,
        rescue_interval: float,
        on_error: Callable[[BaseException], None],
        end_lost: Callable[[list[HeldJob]], None] | None = None,
    ) -> None:
        self._worker_id = worker_id
        self._store = store
        self._held = held
        self._maintenance = maintenance
        self._lease = lease
        self._rescue_interval = rescue_interval
        self._end_lost = end_lost
        self._next_rescue = 0.0
        self._loop = PeriodicThread(
            name="sqljobs-heartbeat",
            what="heartbeat",
            interval=interval,
            tick=self.beat,
            on_error=on_error,
            expected=(StoreError,),
        )

    def start(self) -> None:
        self._next_rescue = time.monotonic() + self._rescue_interval
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def join(self, timeout: float) -> None:
        self._loop.join(timeout)

    def beat(self) -> None:
        """One round: renew leases and store progress, cancel what was taken away, enqueue
        due periodic jobs and, when its time came, rescue and prune."""
        now = time.monotonic()
        lease_seconds = self._lease.total_seconds()
        entries = self._held.entries()
        # A job past its timeout is not renewed: the watchdog stops a sync one and records
        # its timeout; if this worker hangs for good, the lease runs out and another worker
        # rescues the job.
        # A job waiting in prefetch for longer than a lease (behind a hung task) is not
        # renewed either: it expires and is rescued without costing an attempt (it never
        # started), for an idle worker to take; if an executor gets to it first, its start
        # finds it no longer held and skips it.
        renew = [
            job_id
            for job_id, entry in entries
            if (entry.started is not None or now < entry.claimed + lease_seconds)
            and (entry.deadline is None or now < entry.deadline + lease_seconds)
        ]
        progress = [
            (job_id, *reported)
            for job_id, entry in entries
            if (reported := entry.ctx.take_progress()) is not None
        ]
        lost = self._store.heartbeat(
            worker_id=self._worker_id,
            job_ids=renew,
            lease=self._lease,
            check_ids=[job_id for job_id, _ in entries],
            progress=progress,
        )
        for job_id, entry in entries:
            if job_id in lost:
                entry.ctx.cancel()
        if self._end_lost is not None:
            self._end_lost([entry for job_id, entry in entries if job_id in lost])
        self._maintenance.enqueue_due()
        if now >= self._next_rescue:
            self._next_rescue = now + self._rescue_interval
            self._maintenance.run_once(lease=self._lease)
        else:
            self._maintenance.prune_if_due()
