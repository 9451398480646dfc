"""The watchdog: stops sync attempts that run past their timeout.

Python cannot stop a thread, but the database can end its connection: the watchdog ends the
attempt's session connection from outside (its transaction is rolled back, its locks are
released), records the attempt as timed out (:class:`~sqljobs.JobTimeout`, retried by the
task's policy, conditional on the lease like any outcome), frees its slot and starts a new
executor in place of the stuck thread. Whatever that thread's task does later is ignored.
It runs on a thread of its own, so that a hung SQLite writer cannot delay it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..exceptions import StoreError
from ..store import JobStore
from ._executors import ExecutorPool
from ._held import HeldJob, HeldJobs
from ._periodic import PeriodicThread
from ._runner import JobRunner
from ._stats import WorkerStats

log = logging.getLogger("sqljobs.worker")


class Watchdog:
    """One thread looking every ``interval`` seconds for attempts past their deadline."""

    def __init__(
        self,
        *,
        store: JobStore,
        held: HeldJobs,
        runner: JobRunner,
        executors: ExecutorPool,
        stats: WorkerStats,
        interval: float,
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._store = store
        self._held = held
        self._runner = runner
        self._executors = executors
        self._stats = stats
        self._on_error = on_error
        self._loop = PeriodicThread(
            name="sqljobs-watchdog",
            what="watchdog",
            interval=interval,
            tick=self.check,
            on_error=on_error,
        )

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def join(self, timeout: float) -> None:
        self._loop.join(timeout)

    def check(self) -> None:
        """Stop every sync attempt past its deadline."""
        now = time.monotonic()
        for entry in self._held.overdue(now):
            self._time_out(entry, now)

    def end_lost(self, entries: list[HeldJob]) -> None:
        """Attempts whose lease was lost (cancelled or rescued) can no longer commit: end
        their sessions' database work now, so that their locks are released; their executors
        then store nothing."""
        for entry in entries:
            if entry.watch is None:
                continue
            try:
                entry.watch.end(self._store.end_session, abandon=False)
            except StoreError as exc:
                log.warning("could not end the session of job %s: %s", entry.job.id, exc)

    def _time_out(self, entry: HeldJob, now: float) -> None:
        if entry.watch is None or entry.started is None:
            return
        try:
            if not entry.watch.end(self._store.end_session, abandon=True):
                return  # it returned meanwhile: its executor stores its outcome
        except StoreError as exc:
            log.error("could not end the session of job %s: %s; will try again", entry.job.id, exc)
            self._on_error(exc)
            return
        self._held.abandon(entry)
        try:
            self._stats.count(self._runner.timed_out(entry.job, now - entry.started))
        except StoreError as exc:
            log.error(
                "storing the timeout of job %s failed (%s); it will be rescued when its lease "
                "expires",
                entry.job.id,
                exc,
            )
            self._on_error(exc)
        finally:
            self._executors.replace(entry)
