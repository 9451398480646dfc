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
from ._held import HeldJobs
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
        self._threads = [
            threading.Thread(target=self._run, name=f"sqljobs-executor-{index}", daemon=True)
            for index in range(size)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> None:
        """Queue a claimed job (it holds a slot) for the next free executor."""
        self._inbox.put(job)

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
        for _ in self._threads:
            self._inbox.put(None)

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout=timeout)

    def _run(self) -> None:
        while True:
            job = self._inbox.get()
            if job is None:
                return
            self._execute(job)

    def _execute(self, job: Job) -> None:
        handed_over = False
        entry = self._held.start(job)
        try:
            if entry is None or not self._runner.start(job):
                return  # given back (stale in prefetch), cancelled or rescued: never starts
            outcome, duration = self._runner.execute(job, entry.ctx)
            self._on_ran(duration)
            if isinstance(outcome, Completed) and not outcome.persisted:
                # Session-less tasks are completed in batches by the completer thread; the
                # job keeps its lease (and heartbeats) until that commit.
                self._held.mark_ran(entry)
                self._completer.submit(job, outcome, duration)
                handed_over = True
            else:
                self._stats.count(self._runner.persist(job, outcome, duration))
        except StoreError as exc:
            self._on_store_error([job], exc)
        except BaseException:
            log.exception("job %s: unexpected error in the worker", job.id)
        finally:
            if not handed_over:
                self._held.forget([job])
            self._slots.release()
