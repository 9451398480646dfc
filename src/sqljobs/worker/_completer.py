"""The completer: stores the completions of session-less jobs in batches.

A task without a session has nothing of its own to commit, so its completion needs no
transaction of its own: executors hand it over and move on, and this thread stores up to
:data:`MAX_COMPLETION_BATCH` of them per transaction. The job keeps its lease (and its
heartbeats) until that commit. Results were checked like arguments when the task returned;
if the database still refuses a batch, its completions are stored one by one, so only the job
whose write fails is failed (with the database's error), and the others complete once.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from ..exceptions import StoreError
from ..jobs import Job
from ._held import HeldJobs
from ._outcomes import Completed
from ._runner import JobRunner
from ._stats import WorkerStats

log = logging.getLogger("sqljobs.worker")

#: Most completions stored in one transaction.
MAX_COMPLETION_BATCH = 500

_Completion = tuple[Job, Completed, float]


class Completer:
    """One thread storing handed-over completions until :meth:`finish`."""

    def __init__(
        self,
        *,
        runner: JobRunner,
        held: HeldJobs,
        stats: WorkerStats,
        on_store_error: Callable[[list[Job], StoreError], None],
    ) -> None:
        self._runner = runner
        self._held = held
        self._stats = stats
        self._on_store_error = on_store_error
        self._pending: queue.Queue[_Completion | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sqljobs-completer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job, outcome: Completed, duration: float) -> None:
        self._pending.put((job, outcome, duration))

    def finish(self, timeout: float) -> None:
        """Store what was handed over so far, then stop."""
        self._pending.put(None)
        self._thread.join(timeout=timeout)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while True:
            batch, finished = self._next_batch()
            if batch:
                self._store(batch)
            if finished:
                return

    def _next_batch(self) -> tuple[list[_Completion], bool]:
        """Wait for one completion, then take what else is already there (up to the batch
        size); True once :meth:`finish` was called."""
        first = self._pending.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < MAX_COMPLETION_BATCH:
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _store(self, batch: list[_Completion]) -> None:
        try:
            for _job, outcome in self._runner.persist_completions(batch):
                self._stats.count(outcome)
        except StoreError as exc:
            log.warning(
                "storing %d completion(s) in one transaction failed (%s); storing them one "
                "by one, so that only a job whose result the database refuses fails",
                len(batch),
                exc,
            )
            self._store_one_by_one(batch)
        except BaseException:
            log.exception("storing %d completion(s) failed unexpectedly", len(batch))
        finally:
            self._held.forget([job for job, _, _ in batch])

    def _store_one_by_one(self, batch: list[_Completion]) -> None:
        for index, (job, outcome, duration) in enumerate(batch):
            try:
                self._stats.count(self._runner.persist(job, outcome, duration))
            except StoreError as exc:  # not even a failure could be stored: rescue the rest
                self._on_store_error([job for job, _, _ in batch[index:]], exc)
                return
