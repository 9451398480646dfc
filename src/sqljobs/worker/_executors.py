"""Executor threads: each runs one claimed job at a time, in its own Session.

The claimer puts claimed jobs into the pool's inbox; a free executor takes the next one, runs
it through the :class:`~sqljobs.worker._runner.JobRunner`, stores its outcome (or hands a
session-less completion to the completer) and frees its slot.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from ..exceptions import StoreError
from ..jobs import Job
from ._completer import Completer
from ._held import HeldJob, HeldJobs
from ._outcomes import Completed
from ._runner import JobRunner
from ._slots import Slots
from ._stats import WorkerStats

log = logging.getLogger("sqljobs.worker")


class ExecutorPool:
    """``size`` executor threads fed by one inbox."""

    def __init__(
        self,
        *,
        size: int,
        runner: JobRunner,
        held: HeldJobs,
        slots: Slots,
        completer: Completer,
        stats: WorkerStats,
        on_ran: Callable[[float], None],
        on_store_error: Callable[[list[Job], StoreError], None],
    ) -> None:
        self.size = size
        self._runner = runner
        self._held = held
        self._slots = slots
        self._completer = completer
        self._stats = stats
        self._on_ran = on_ran
        self._on_store_error = on_store_error
        self._inbox: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        #: Executors waiting for a job right now.
        self._waiting = 0
        self._started = 0
        #: Threads left in attempts the watchdog timed out (they end when their task returns).
        self.left_behind = 0
        self._threads = [self._new_thread() for _ in range(size)]

    def _new_thread(self) -> threading.Thread:
        index, self._started = self._started, self._started + 1
        return threading.Thread(target=self._run, name=f"sqljobs-executor-{index}", daemon=True)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def replace(self, entry: HeldJob) -> None:
        """The watchdog recorded the outcome of ``entry``'s attempt (timed out): free its slot
        and start a new executor in place of the thread stuck in it, which ends when (if ever)
        its task returns."""
        self._slots.release()
        with self._lock:
            stuck = entry.watch.thread if entry.watch is not None else None
            if stuck not in self._threads:
                return
            self._threads.remove(stuck)
            self.left_behind += 1
            thread = self._new_thread()
            self._threads.append(thread)
            left_behind = self.left_behind
        thread.start()
        log.warning(
            "job %s: executor thread %s is left in its timed-out task; %s took its place "
            "(%d thread(s) left behind so far)",
            entry.job.id,
            stuck.name,
            thread.name,
            left_behind,
        )

    def submit(self, job: Job) -> None:
        """Queue a claimed job (it holds a slot) for the next free executor."""
        self._inbox.put(job)

    def idle(self) -> int:
        """Executors that would start a job handed over now: waiting ones, less the jobs
        already in the inbox."""
        with self._lock:
            waiting = self._waiting
        return max(waiting - self._inbox.qsize(), 0)

    def has_waiting(self) -> bool:
        """Claimed jobs wait for an executor."""
        return not self._inbox.empty()

    def take_waiting(self) -> list[Job]:
        """Take back the claimed jobs no executor started yet."""
        waiting: list[Job] = []
        while True:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                return waiting
            if job is not None:
                waiting.append(job)

    def stop(self) -> None:
        """Let each executor exit once it is done with its current job."""
        with self._lock:
            count = len(self._threads)
        for _ in range(count):
            self._inbox.put(None)

    def join(self, timeout: float) -> None:
        """Wait for the executors (not for threads left behind in timed-out tasks)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._waiting += 1
            try:
                job = self._inbox.get()
            finally:
                with self._lock:
                    self._waiting -= 1
            if job is None:
                return
            if not self._execute(job):
                log.warning(
                    "job %s: its timed-out attempt %s returned at last; its outcome is "
                    "ignored and %s ends",
                    job.id,
                    job.attempt,
                    threading.current_thread().name,
                )
                return

    def _execute(self, job: Job) -> bool:
        """Run ``job``; False if the watchdog timed the attempt out meanwhile: then it owns
        the job's slot and outcome, and a new executor took this thread's place."""
        entry = self._held.start(job)
        watch = entry.watch if entry is not None else None
        handed_over = False
        try:
            handed_over = self._run_one(job, entry)
        finally:
            if watch is not None:
                watch.settle()
            abandoned = watch is not None and watch.abandoned
            if not abandoned:
                if not handed_over:
                    self._held.forget([job])
                self._slots.release()
        return not abandoned

    def _run_one(self, job: Job, entry: HeldJob | None) -> bool:
        """True if the completion was handed over to the completer."""
        try:
            # A job claimed for an idle executor had its start recorded by the claim.
            if entry is None or not (job.started_at is not None or self._runner.start(job)):
                return False  # given back (stale in prefetch), cancelled or rescued
            if entry.watch is not None and entry.watch.abandoned:
                return False  # its start took longer than its timeout
            outcome, duration = self._runner.execute(job, entry.ctx, entry.watch)
            if entry.watch is not None:
                entry.watch.settle()
                if entry.watch.abandoned:
                    return False
            self._on_ran(duration)
            if isinstance(outcome, Completed) and not outcome.persisted:
                # Session-less tasks are completed in batches by the completer thread; the
                # job keeps its lease (and heartbeats) until that commit.
                self._held.mark_ran(entry)
                self._completer.submit(job, outcome, duration)
                return True
            self._stats.count(self._runner.persist(job, outcome, duration))
        except StoreError as exc:
            self._on_store_error([job], exc)
        except BaseException:
            log.exception("job %s: unexpected error in the worker", job.id)
        return False
