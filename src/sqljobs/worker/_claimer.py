"""The claimer: one thread that claims batches of jobs into a worker's free slots.

It waits for free room (slots), claims up to that many jobs in one round trip, respecting
per-queue limits (this worker's own ``queues={name: n}``, global and rate limits stored with
``jobs.configure_queue``), and hands them to the executors. While jobs are short it claims
ahead of the executors (prefetch); after a claim that emptied the queue it waits a few
milliseconds before the next (cooldown); between claims it stages scheduled and retryable jobs
whose time came.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

from ..exceptions import OutcomeUnknown, StoreError
from ..jobs import Job
from ..registry import TaskRegistry
from ..store import JobStore
from ._executors import ExecutorPool
from ._held import HeldJobs
from ._slots import Slots
from ._stats import WorkerStats

log = logging.getLogger("sqljobs.worker")

#: Most seconds between re-reads of the queues' settings (limits, paused): a worker re-reads
#: them at least once per poll interval, so a paused queue stops within one poll.
SETTINGS_REFRESH = 5.0
#: With automatic prefetch, jobs whose run time averages below this are claimed ahead.
SHORT_JOB_SECONDS = 0.05
#: After a claim that emptied the queue, the next claim waits until this long after it: new
#: jobs then arrive one notification each, and claiming them one by one costs a claim round
#: trip (and its CPU) per job. A job enqueued into an idle worker is claimed at once.
CLAIM_COOLDOWN_SECONDS = 0.005
#: Longest pause after repeated failed claims.
MAX_FAILURE_PAUSE = 30.0


class PrefetchPolicy:
    """How many claimed jobs may wait for an executor beyond the running ones.

    ``fixed`` (an int) holds always; None is automatic: ``most`` while recent jobs ran
    shorter than :data:`SHORT_JOB_SECONDS`, none while they ran longer, so that slow jobs
    never wait behind each other in one worker while another worker idles.
    """

    def __init__(self, *, concurrency: int, fixed: int | None) -> None:
        self.fixed = fixed
        self.most = 2 * concurrency if fixed is None else fixed
        self.typical_run_time = SHORT_JOB_SECONDS  # moving average; starts undecided

    def record(self, duration: float) -> None:
        """A job ran for ``duration`` seconds."""
        self.typical_run_time += (duration - self.typical_run_time) / 8

    def now(self) -> int:
        if self.fixed is not None:
            return self.fixed
        return self.most if self.typical_run_time < SHORT_JOB_SECONDS else 0


class Claimer:
    """Claims jobs for one worker until ``stopping`` is set."""

    def __init__(
        self,
        *,
        worker_id: str,
        store: JobStore,
        registry: TaskRegistry,
        queues: Sequence[str],
        local_limits: dict[str, int],
        concurrency: int,
        prefetch: PrefetchPolicy,
        poll_interval: float,
        lease: timedelta,
        held: HeldJobs,
        slots: Slots,
        executors: ExecutorPool,
        stats: WorkerStats,
        stopping: threading.Event,
        wakeup: threading.Event,
        on_error: Callable[[BaseException], None],
        on_idle: Callable[[str], None],
        on_crash: Callable[[], None],
    ) -> None:
        self._worker_id = worker_id
        self._store = store
        self._registry = registry
        self._queues = list(queues)
        self._local_limits = local_limits
        self._concurrency = concurrency
        self._prefetch = prefetch
        self._poll_interval = poll_interval
        self._lease = lease
        self._held = held
        self._slots = slots
        self._executors = executors
        self._stats = stats
        self._stopping = stopping
        self._wakeup = wakeup
        self._on_error = on_error
        self._on_idle = on_idle
        self._on_crash = on_crash
        self._limited: set[str] = set()
        self._paused: set[str] = set()
        self._settings_expire = 0.0
        self._rotation = 0
        self._keyed_first = False
        #: A claim's answer was lost: the jobs it took are given back before the next claim.
        self._give_back_due = False
        self._thread = threading.Thread(target=self._run, name="sqljobs-claimer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (a claim in flight finishes first); no-op when called
        from the claimer itself (it stops the worker when it crashed)."""
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        try:
            self._claim_until_stopped()
        except BaseException:
            log.critical(
                "worker %s: the claimer crashed; stopping the worker",
                self._worker_id,
                exc_info=True,
            )
            self._on_crash()

    def _claim_until_stopped(self) -> None:
        failures = 0
        next_stage = 0.0
        drained_at: float | None = None
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=self._poll_interval):
                continue
            prefetch = self._prefetch.now()
            free = self._slots.gather(
                self._concurrency + prefetch,
                more_coming=lambda: self._executors.has_waiting() and not self._stopping.is_set(),
            )
            if self._stopping.is_set():
                self._slots.release(free)
                break
            # Cleared before counting, so a job finishing from here on wakes the wait below.
            self._wakeup.clear()
            room = self._concurrency + prefetch - self._held.holding()
            if room < free:  # prefetch is down (slow jobs): hold no more than allowed now
                self._slots.release(free - max(room, 0))
                free = max(room, 0)
            if not free:
                self._wait("no room")  # an executor finishing wakes it
                continue
            if drained_at is not None:
                cooldown = CLAIM_COOLDOWN_SECONDS - (time.monotonic() - drained_at)
                drained_at = None
                if self._stopping.wait(cooldown):
                    self._slots.release(free)
                    break
            # Jobs for executors idle right now are started by their claim (a transaction
            # per job fewer); a claim for prefetch leaves that to the executor taking them.
            idle = self._executors.idle()
            asked = min(free, idle) if idle else free
            try:
                if self._give_back_due:
                    self._give_back_unheld()
                claimed = self._claim(asked, start=idle > 0)
            except OutcomeUnknown:
                self._slots.release(free)
                self._give_back_due = True
                log.warning(
                    "worker %s: the answer to a claim was lost (its connection dropped); the "
                    "jobs it may have taken are given back before the next claim",
                    self._worker_id,
                )
                continue
            except StoreError as exc:
                self._slots.release(free)
                failures += 1
                self._pause_after(exc, failures)
                continue
            failures = 0
            if len(claimed) < asked:
                drained_at = time.monotonic()
            self._slots.release(free - len(claimed))
            self._hand_over(claimed)
            # Scheduled and retryable jobs whose time came are staged after the claim, so a
            # wake-up for a new job never waits for this extra round trip.
            if time.monotonic() >= next_stage:
                next_stage = time.monotonic() + self._poll_interval
                try:
                    if self._store.stage():
                        continue  # claim them now
                except StoreError as exc:
                    failures += 1
                    self._pause_after(exc, failures)
                    continue
            if not claimed:
                self._wait("paused" if self._all_paused() else "no jobs")

    def _all_paused(self) -> bool:
        return bool(self._queues) and all(q in self._paused for q in self._queues)

    def _wait(self, reason: str) -> None:
        self._on_idle(reason)
        self._wakeup.wait(self._poll_interval)

    def _hand_over(self, claimed: list[Job]) -> None:
        self._held.add(claimed, self._timeout_of, self._is_sync)
        for job in claimed:
            self._stats.claimed += 1
            self._executors.submit(job)

    def _timeout_of(self, job: Job) -> float | None:
        task = self._registry.get(job.task)
        return task.timeout if task is not None else None

    def _is_sync(self, job: Job) -> bool:
        task = self._registry.get(job.task)
        return task is not None and not task.is_async

    def _pause_after(self, exc: StoreError, failures: int) -> None:
        pause = min(self._poll_interval * 2**failures, MAX_FAILURE_PAUSE)
        log.error("claiming jobs failed (%s); retrying in %.1fs", exc, pause)
        self._on_error(exc)
        self._stopping.wait(pause)

    def _give_back_unheld(self) -> None:
        """After a claim whose answer was lost: its jobs are this worker's, but no executor
        has them. Give them back, the attempt not counted (the claim may have recorded their
        start); jobs left to rescue after a failed outcome write are not among them."""
        keep = [job.id for job in self._held.jobs()] + self._held.left_to_rescue()
        given_back = self._store.give_back_unheld(worker_id=self._worker_id, held_ids=keep)
        self._give_back_due = False
        if given_back:
            log.warning(
                "worker %s: gave back job(s) %s, claimed by a claim whose answer was lost",
                self._worker_id,
                given_back,
            )

    def _claim(self, free: int, *, start: bool = False) -> list[Job]:
        """Claim up to ``free`` jobs, respecting per-queue limits: local ones (this worker's
        ``queues={name: n}``) and global/rate limits stored with ``jobs.configure_queue``.
        ``start``: they go to idle executors at once, so a plain claim records their start."""
        if time.monotonic() >= self._settings_expire:
            settings = self._store.queue_settings()
            self._limited = {
                name
                for name, row in settings.items()
                if name in self._queues
                and (row["global_limit"] is not None or row["rate_limit"] is not None)
            }
            self._paused = {name for name, row in settings.items() if row.get("paused")}
            refresh = min(SETTINGS_REFRESH, self._poll_interval)
            self._settings_expire = time.monotonic() + refresh
        queues = [q for q in self._queues if q not in self._paused]
        if not queues:
            return []
        # Only tasks this worker knows: in a rolling deploy, an old worker leaves jobs of new
        # tasks to the new workers instead of failing them. Tasks with a KeyLimit are claimed
        # apart, by a claim that locks their keys.
        tasks = [name for name, task in self._registry.items() if task.limit is None]
        keyed = [name for name, task in self._registry.items() if task.limit is not None]
        special = [q for q in queues if q in self._limited or self._local_limits.get(q)]
        if not special:
            return self._claim_plain(queues, free, tasks, keyed, start=start)
        running, holding = self._held.occupancy()
        # A limited queue's jobs count against its limit from their claim, so they are not
        # prefetched: only idle executors take jobs here.
        free = min(free, self._concurrency - holding)
        claimed: list[Job] = []
        self._rotation = (self._rotation + 1) % len(special)
        for queue in special[self._rotation :] + special[: self._rotation]:
            room = free - len(claimed)
            local = self._local_limits.get(queue)
            if local:
                room = min(room, local - running[queue])
            if room <= 0:
                continue
            if queue in self._limited:
                got: list[Job] = []
                for names, is_keyed in self._task_groups(tasks, keyed):
                    if room - len(got) <= 0:
                        break
                    got += self._store.claim_limited(
                        worker_id=self._worker_id,
                        queue=queue,
                        limit=room - len(got),
                        lease=self._lease,
                        tasks=names,
                        keyed=is_keyed,
                    )
                claimed += got
            else:
                claimed += self._claim_plain([queue], room, tasks, keyed)
        plain = [q for q in queues if q not in special]
        if plain and free > len(claimed):
            claimed += self._claim_plain(plain, free - len(claimed), tasks, keyed)
        return claimed

    def _task_groups(self, tasks: list[str], keyed: list[str]) -> list[tuple[list[str], bool]]:
        """The plain and the keyed tasks, each claimed first every other round, so that
        neither kind's backlog keeps the other waiting."""
        groups = [(names, is_keyed) for names, is_keyed in ((tasks, False), (keyed, True)) if names]
        self._keyed_first = not self._keyed_first
        return groups[::-1] if self._keyed_first else groups

    def _claim_plain(
        self,
        queues: list[str],
        limit: int,
        tasks: list[str],
        keyed: list[str],
        *,
        start: bool = False,
    ) -> list[Job]:
        claimed: list[Job] = []
        for names, is_keyed in self._task_groups(tasks, keyed):
            room = limit - len(claimed)
            if room <= 0:
                break
            if is_keyed:
                claimed += self._store.claim_keyed(
                    worker_id=self._worker_id,
                    queues=queues,
                    limit=room,
                    lease=self._lease,
                    tasks=names,
                )
            else:
                claimed += self._store.claim(
                    worker_id=self._worker_id,
                    queues=queues,
                    limit=room,
                    lease=self._lease,
                    tasks=names,
                    start=start,
                )
        return claimed
