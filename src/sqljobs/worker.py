"""Worker: one claimer thread feeding a fixed pool of executor threads, plus a heartbeat.

While jobs are short, the claimer keeps claimed jobs waiting beyond the ``concurrency`` that
run (``prefetch``), so that one claim round trip feeds several jobs and a freed executor starts
its next job at once; a waiting job holds no database connection, so a worker never uses more
than ``concurrency + 3``. The heartbeat thread renews the leases of claimed
jobs and rescues jobs whose lease expired elsewhere.
"""

from __future__ import annotations

import collections
import logging
import os
import queue as _queue
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from . import _dialects, events
from ._maintenance import Maintenance
from ._notifier import NotificationListener
from ._outcomes import Cancelled, Completed, Failed, LeaseLost, Outcome
from ._utils import Duration, to_seconds, to_timedelta
from .context import JobContext
from .exceptions import ConfigurationError, StoreError
from .jobs import Job

if TYPE_CHECKING:
    from .jobqueue import JobQueue

log = logging.getLogger("sqljobs.worker")

#: Connections a worker uses besides its executors: claimer, completer and heartbeat.
OWN_CONNECTIONS = 3
#: Seconds between re-reads of the queues' global and rate limits.
SETTINGS_REFRESH = 5.0
#: Most completions stored in one transaction.
MAX_COMPLETION_BATCH = 500
#: With automatic prefetch, jobs whose run time averages below this are claimed ahead.
SHORT_JOB_SECONDS = 0.05
#: After a claim that emptied the queue, the next claim waits until this long after it: new
#: jobs then arrive one notification each, and claiming them one by one costs a claim round
#: trip (and its CPU) per job. A job enqueued into an idle worker is claimed at once.
CLAIM_COOLDOWN_SECONDS = 0.005


@dataclass
class _Running:
    """A job this worker claimed: waiting for an executor (``started`` is None) or running."""

    job: Job
    timeout: float | None
    ctx: JobContext
    started: float | None = None
    deadline: float | None = None
    #: Ran; its completion waits for the completer's next batch.
    ran: bool = False

    def start(self) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout if self.timeout else None


@dataclass
class WorkerStats:
    """Counters of one worker since it started."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    discarded: int = 0
    cancelled: int = 0
    lease_lost: int = 0
    started_at: float = field(default_factory=time.monotonic)


class Worker:
    """Runs jobs from ``queues`` with ``concurrency`` threads until :meth:`stop`.

    Args:
        queues: queue names (default: every queue a registered task uses), or a mapping of
            name to the most jobs of that queue this worker runs at once (None: no own limit).
        concurrency: executor threads; each holds at most one database connection.
        prefetch: claimed jobs kept waiting for the next free executor, so that one claim
            round trip feeds several jobs and a freed executor starts at once. Waiting jobs
            keep their lease and are given back to the queue at :meth:`stop`. Default
            (None): ``2 * concurrency`` while recent jobs ran shorter than 50 ms, none while
            they ran longer, so that slow jobs never wait behind each other in one worker
            while another worker idles. 0 claims only for idle executors; an int fixes it.
            Limited queues (per-queue or global limits) are claimed for idle executors only.
        poll_interval: seconds between polls when idle. Enqueues in this process, and on
            PostgreSQL (LISTEN/NOTIFY) in any process, wake the worker at once.
        lease: how long a claimed job stays reserved without a heartbeat; a worker that dies
            has its jobs rescued after this.
        heartbeat_interval: seconds between lease renewals, which also store progress and
            tell running tasks that they were cancelled (default: lease/3, at most 2s).
        rescue_interval: seconds between looks for expired leases (default: lease/2).
        grace: seconds :meth:`stop` lets running jobs finish before releasing them.
        prune_after: delete finished jobs older than this (None: keep them).
        prune_interval: seconds between prunes.
        periodic: enqueue the JobQueue's periodic tasks when their slot comes.

    Example:
        >>> worker = jobs.worker(concurrency=4)                   # doctest: +SKIP
        >>> worker.start()                                        # doctest: +SKIP
        >>> ...
        >>> worker.stop(grace=30)  # finish running jobs, release the rest  # doctest: +SKIP
    """

    def __init__(
        self,
        jobs: JobQueue,
        *,
        queues: Sequence[str] | Mapping[str, int | None] | None = None,
        concurrency: int = 4,
        prefetch: int | None = None,
        poll_interval: Duration = 0.5,
        lease: Duration = 30.0,
        heartbeat_interval: Duration | None = None,
        rescue_interval: Duration | None = None,
        grace: Duration = 30.0,
        name: str | None = None,
        prune_after: Duration | None = timedelta(days=7),
        prune_interval: Duration = 300.0,
        periodic: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
        self.jobs = jobs
        self.queues = list(queues) if queues else jobs.registry.queues() or ["default"]
        #: Per-queue concurrency inside this worker, from ``queues={"mail": 2, ...}``.
        self.local_limits: dict[str, int] = {
            name: limit
            for name, limit in (queues.items() if isinstance(queues, Mapping) else ())
            if limit is not None
        }
        if any(limit < 1 for limit in self.local_limits.values()):
            raise ConfigurationError(f"per-queue limits must be at least 1: {self.local_limits}")
        self._limited: set[str] = set()
        self._settings_expire = 0.0
        self._rotation = 0
        self.concurrency = concurrency
        if prefetch is not None and prefetch < 0:
            raise ConfigurationError(f"prefetch must be 0 or more, got {prefetch}")
        #: None: automatic, from the recent run time of jobs (see ``prefetch`` above).
        self.prefetch = prefetch
        self._most_prefetch = 2 * concurrency if prefetch is None else prefetch
        self._typical_run_time = SHORT_JOB_SECONDS  # moving average; starts undecided
        self.poll_interval = to_seconds(poll_interval, name="poll_interval")
        self.lease = to_timedelta(lease, name="lease")
        lease_seconds = self.lease.total_seconds()
        # Heartbeats also carry progress and tell running tasks they were cancelled, so they
        # come at least every 2 seconds.
        self.heartbeat_interval = to_seconds(
            heartbeat_interval if heartbeat_interval is not None else min(lease_seconds / 3, 2.0),
            name="heartbeat_interval",
        )
        if self.heartbeat_interval >= lease_seconds:
            raise ConfigurationError(
                f"heartbeat_interval ({self.heartbeat_interval}s) must be shorter than the "
                f"lease ({lease_seconds}s), or running jobs would be rescued while alive"
            )
        self.rescue_interval = to_seconds(
            rescue_interval if rescue_interval is not None else max(lease_seconds / 2, 0.1),
            name="rescue_interval",
        )
        self.grace = to_seconds(grace, name="grace")
        self.id = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = WorkerStats()
        self._store = jobs.store
        self._runner = jobs.runner
        self._bus = jobs.events
        # One slot per job this worker may hold, running or waiting for an executor.
        self._slots = threading.Semaphore(concurrency + self._most_prefetch)
        self._inbox: _queue.Queue[Job | None] = _queue.Queue()
        self._completions: _queue.Queue[tuple[Job, Completed, float] | None] = _queue.Queue()
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._wakeup = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._heartbeat_stop = threading.Event()
        self._maintenance = Maintenance(
            self._store,
            bus=self._bus,
            schedules=jobs.schedules if periodic else (),
            prune_after=None if prune_after is None else to_timedelta(prune_after),
            prune_interval=to_seconds(prune_interval, name="prune_interval"),
        )
        self._listener = (
            NotificationListener(self._store.engine, self._on_notification)
            if self._store.support.listen_notify
            else None
        )
        self._started = False

    def __repr__(self) -> str:
        return f"<Worker {self.id} queues={self.queues} concurrency={self.concurrency}>"

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- lifecycle -----------------------------------------------------------------------

    def check(self) -> None:
        """Refuse settings that cannot work, before taking any job."""
        engine = self._store.engine
        _dialects.check_worker_engine(engine)
        needed = self.concurrency + OWN_CONNECTIONS
        capacity = _dialects.pool_capacity(engine)
        if capacity is not None and capacity < needed:
            raise ConfigurationError(
                f"concurrency={self.concurrency} needs up to {needed} connections "
                f"({self.concurrency} job sessions + {OWN_CONNECTIONS} for claiming, "
                f"completing and heartbeats), but the engine's pool holds at most {capacity} "
                "(pool_size + max_overflow). Lower concurrency, or raise pool_size/max_overflow "
                "in create_engine(...); an app serving requests from the same engine needs "
                "room for those too."
            )
        async_factory = self.jobs.async_session_factory
        if async_factory is not None and any(
            t.is_async and t.wants_session for t in self.jobs.registry.by_queue(self.queues)
        ):
            async_engine = async_factory.kw.get("bind")
            if async_engine is not None:
                async_capacity = _dialects.pool_capacity(async_engine.sync_engine)
                if async_capacity is not None and async_capacity < self.concurrency:
                    raise ConfigurationError(
                        f"concurrency={self.concurrency} async job sessions need up to "
                        f"{self.concurrency} connections, but the async engine's pool holds at "
                        f"most {async_capacity}; lower concurrency or grow that pool"
                    )
        self._store.check_ready()

    def start(self) -> None:
        """Check the configuration, register the worker and start its threads."""
        if self._started:
            raise RuntimeError("this worker was already started; create a new one")
        self.check()
        self._started = True
        self._store.register_worker(
            worker_id=self.id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=self.queues,
            concurrency=self.concurrency,
        )
        for index in range(self.concurrency):
            self._spawn(self._slot_loop, f"sqljobs-executor-{index}")
        self._spawn(self._complete_loop, "sqljobs-completer")
        self._spawn(self._heartbeat_loop, "sqljobs-heartbeat")
        if self._listener is not None:
            self._spawn(self._listener.run, "sqljobs-listener")
        self._spawn(self._claim_loop, "sqljobs-claimer")
        self.jobs.attach(self)
        self._bus.emit(events.WORKER_STARTED, worker=self)
        log.info(
            "worker %s started: queues=%s concurrency=%d", self.id, self.queues, self.concurrency
        )

    def _spawn(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` has finished (also after the claimer crashed)."""
        return self._stopped.is_set()

    def notify(self) -> None:
        """Wake the claimer now (new jobs were committed) instead of at the next poll."""
        self._wakeup.set()

    def _on_notification(self, queue: str) -> None:
        if queue in self.queues:
            self._wakeup.set()

    @property
    def running_jobs(self) -> list[Job]:
        with self._lock:
            return [entry.job for entry in self._running.values()]

    def stop(self, grace: Duration | None = None) -> None:
        """Stop claiming, let running jobs finish within ``grace`` seconds, then give the
        rest back to the queue. Their sessions can then no longer commit."""
        if not self._started or self._stopping.is_set():
            return
        wait = self.grace if grace is None else to_seconds(grace, name="grace")
        log.info(
            "worker %s stopping: waiting up to %.1fs for %d running job(s)",
            self.id,
            wait,
            len(self._running),
        )
        self._stopping.set()
        self._wakeup.set()
        deadline = time.monotonic() + wait
        self._give_back_waiting()
        with self._idle:
            while self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._idle.wait(timeout=remaining)
        # Store the completions already made before giving anything back.
        self._completions.put(None)
        completer = next(t for t in self._threads if t.name == "sqljobs-completer")
        completer.join(timeout=30)
        with self._idle:
            leftover = [entry.job for entry in self._running.values()]
        if leftover:
            try:
                released = self._store.release(leftover)
                log.warning(
                    "worker %s released %d job(s) still running after %.1fs",
                    self.id,
                    released,
                    wait,
                )
            except StoreError:
                log.exception(
                    "could not release jobs; they will be rescued when their lease expires"
                )
        for _ in range(self.concurrency):
            self._inbox.put(None)
        self._heartbeat_stop.set()
        if self._listener is not None:
            self._listener.stop()
        for thread in self._threads:
            if thread.name.startswith("sqljobs-executor") and leftover:
                continue  # may be stuck in a task that never returns; it is a daemon thread
            thread.join(timeout=5)
        try:
            self._store.unregister_worker(self.id)
        except StoreError:
            log.warning("could not unregister worker %s", self.id, exc_info=True)
        self.jobs.detach(self)
        self._stopped.set()
        self._bus.emit(events.WORKER_STOPPED, worker=self)
        log.info("worker %s stopped", self.id)

    def _give_back_waiting(self) -> None:
        """At stop, release the claimed jobs no executor started, so that other workers can
        run them now rather than after this worker's grace period."""
        claimer = next((t for t in self._threads if t.name == "sqljobs-claimer"), None)
        if claimer is not None and claimer is not threading.current_thread():
            claimer.join(timeout=self.poll_interval + 30)  # lets a claim in flight finish
        waiting: list[Job] = []
        while True:
            try:
                job = self._inbox.get_nowait()
            except _queue.Empty:
                break
            if job is not None:
                waiting.append(job)
        if not waiting:
            return
        try:
            self._store.release(waiting)
        except StoreError:
            log.exception("could not release waiting jobs; they will be rescued later")
        self._forget(waiting)
        self._release_slots(len(waiting))

    # -- threads -------------------------------------------------------------------------

    def _claim_loop(self) -> None:
        try:
            self._claim_until_stopped()
        except BaseException:
            log.critical(
                "worker %s: the claimer crashed; stopping the worker", self.id, exc_info=True
            )
            threading.Thread(target=self.stop, name="sqljobs-stop", daemon=True).start()

    def _claim_until_stopped(self) -> None:
        failures = 0
        next_stage = 0.0
        drained_at: float | None = None
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=self.poll_interval):
                continue
            prefetch = self._prefetch_now()
            free = self._gather_slots(self.concurrency + prefetch)
            if self._stopping.is_set():
                self._release_slots(free)
                break
            # Cleared before counting, so a job finishing from here on wakes the wait below.
            self._wakeup.clear()
            with self._lock:
                held = self._holding_slots()
            room = self.concurrency + prefetch - held
            if room < free:  # prefetch is down (slow jobs): hold no more than allowed now
                self._release_slots(free - max(room, 0))
                free = max(room, 0)
            if not free:
                self._wakeup.wait(self.poll_interval)  # an executor finishing wakes it
                continue
            if drained_at is not None:
                cooldown = CLAIM_COOLDOWN_SECONDS - (time.monotonic() - drained_at)
                drained_at = None
                if self._stopping.wait(cooldown):
                    self._release_slots(free)
                    break
            try:
                claimed = self._claim(free)
            except StoreError as exc:
                self._release_slots(free)
                failures += 1
                self._pause_after(exc, failures)
                continue
            failures = 0
            if len(claimed) < free:
                drained_at = time.monotonic()
            self._release_slots(free - len(claimed))
            with self._lock:
                for job in claimed:
                    task = self.jobs.registry.get(job.task)
                    timeout = task.timeout if task is not None else None
                    self._running[job.id] = _Running(job, timeout, JobContext(job))
            for job in claimed:
                self.stats.claimed += 1
                self._inbox.put(job)
            # Scheduled and retryable jobs whose time came are staged after the claim, so a
            # wake-up for a new job never waits for this extra round trip.
            if time.monotonic() >= next_stage:
                next_stage = time.monotonic() + self.poll_interval
                try:
                    if self._store.stage():
                        continue  # claim them now
                except StoreError as exc:
                    failures += 1
                    self._pause_after(exc, failures)
                    continue
            if not claimed:
                self._wakeup.wait(self.poll_interval)

    def _holding_slots(self) -> int:
        """Jobs running or waiting for an executor (call with ``self._lock`` held); a job that
        ran and only waits for its batched completion holds no slot's worth of room."""
        return sum(1 for entry in self._running.values() if not entry.ran)

    def _gather_slots(self, capacity: int) -> int:
        """Called holding one free slot: take free ones, up to ``capacity``. While claimed
        jobs still wait for an executor, wait until half of them are free, so that one claim
        round trip fetches a batch instead of a job per freed executor."""
        batch = max(1, capacity // 2)
        free = 1
        while free < capacity:
            if self._slots.acquire(blocking=False):
                free += 1
            elif free < batch and not self._inbox.empty() and not self._stopping.is_set():
                if self._slots.acquire(timeout=0.05):
                    free += 1
            else:
                break
        return free

    def _prefetch_now(self) -> int:
        if self.prefetch is not None:
            return self.prefetch
        return self._most_prefetch if self._typical_run_time < SHORT_JOB_SECONDS else 0

    def _pause_after(self, exc: StoreError, failures: int) -> None:
        pause = min(self.poll_interval * 2**failures, 30.0)
        log.error("claiming jobs failed (%s); retrying in %.1fs", exc, pause)
        self._bus.emit(events.WORKER_ERROR, worker=self, error=exc)
        self._stopping.wait(pause)

    def _claim(self, free: int) -> list[Job]:
        """Claim up to ``free`` jobs, respecting per-queue limits: local ones (this worker's
        ``queues={name: n}``) and global/rate limits stored with ``jobs.configure_queue``."""
        if time.monotonic() >= self._settings_expire:
            settings = self._store.queue_settings()
            self._limited = {
                name
                for name, row in settings.items()
                if name in self.queues
                and (row["global_limit"] is not None or row["rate_limit"] is not None)
            }
            self._settings_expire = time.monotonic() + SETTINGS_REFRESH
        special = [q for q in self.queues if q in self._limited or self.local_limits.get(q)]
        if not special:
            return self._store.claim(
                worker_id=self.id, queues=self.queues, limit=free, lease=self.lease
            )
        with self._lock:
            running = collections.Counter(e.job.queue for e in self._running.values())
            # A limited queue's jobs count against its limit from their claim, so they are
            # not prefetched: only idle executors take jobs here.
            free = min(free, self.concurrency - self._holding_slots())
        claimed: list[Job] = []
        self._rotation = (self._rotation + 1) % len(special)
        for queue in special[self._rotation :] + special[: self._rotation]:
            room = free - len(claimed)
            local = self.local_limits.get(queue)
            if local:
                room = min(room, local - running[queue])
            if room <= 0:
                continue
            if queue in self._limited:
                claimed += self._store.claim_limited(
                    worker_id=self.id, queue=queue, limit=room, lease=self.lease
                )
            else:
                claimed += self._store.claim(
                    worker_id=self.id, queues=[queue], limit=room, lease=self.lease
                )
        plain = [q for q in self.queues if q not in special]
        if plain and free > len(claimed):
            claimed += self._store.claim(
                worker_id=self.id, queues=plain, limit=free - len(claimed), lease=self.lease
            )
        return claimed

    def _release_slots(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    def _slot_loop(self) -> None:
        while True:
            job = self._inbox.get()
            if job is None:
                return
            handed_over = False
            with self._lock:
                entry = self._running.get(job.id)
                if entry is not None:
                    entry.start()
            try:
                outcome, duration = self._runner.execute(job, entry.ctx if entry else None)
                self._typical_run_time += (duration - self._typical_run_time) / 8
                if isinstance(outcome, Completed) and not outcome.persisted:
                    # Session-less tasks are completed in batches by the completer thread;
                    # the job keeps its lease (and heartbeats) until that commit.
                    if entry is not None:
                        entry.ran = True  # no longer takes room from claims
                    self._completions.put((job, outcome, duration))
                    handed_over = True
                else:
                    self._count(self._runner.persist(job, outcome, duration))
            except StoreError as exc:
                self._store_failed([job], exc)
            except BaseException:
                log.exception("job %s: unexpected error in the worker", job.id)
            finally:
                if not handed_over:
                    self._forget([job])
                self._slots.release()

    def _complete_loop(self) -> None:
        while True:
            first = self._completions.get()
            if first is None:
                return
            batch = [first]
            finished = False
            while len(batch) < MAX_COMPLETION_BATCH:
                try:
                    item = self._completions.get_nowait()
                except _queue.Empty:
                    break
                if item is None:
                    finished = True
                    break
                batch.append(item)
            try:
                for _job, outcome in self._runner.persist_completions(batch):
                    self._count(outcome)
            except StoreError as exc:
                self._store_failed([job for job, _, _ in batch], exc)
            except BaseException:
                log.exception("storing %d completion(s) failed unexpectedly", len(batch))
            finally:
                self._forget([job for job, _, _ in batch])
            if finished:
                return

    def _store_failed(self, failed: list[Job], exc: StoreError) -> None:
        log.error(
            "storing the outcome of job(s) %s failed (%s); they will be rescued when "
            "their lease expires",
            [job.id for job in failed],
            exc,
        )
        self._bus.emit(events.WORKER_ERROR, worker=self, error=exc)

    def _forget(self, done: list[Job]) -> None:
        with self._idle:
            for job in done:
                self._running.pop(job.id, None)
            self._idle.notify_all()
        self._wakeup.set()  # room for a job: the claimer may be waiting for it

    def _count(self, outcome: Outcome) -> None:
        with self._lock:
            if isinstance(outcome, Completed):
                self.stats.completed += 1
            elif isinstance(outcome, Failed):
                if outcome.retry_at is None:
                    self.stats.discarded += 1
                else:
                    self.stats.failed += 1
            elif isinstance(outcome, Cancelled):
                self.stats.cancelled += 1
            elif isinstance(outcome, LeaseLost):
                self.stats.lease_lost += 1

    def _heartbeat_loop(self) -> None:
        next_rescue = time.monotonic() + self.rescue_interval
        while not self._heartbeat_stop.wait(self.heartbeat_interval):
            now = time.monotonic()
            lease_seconds = self.lease.total_seconds()
            with self._lock:
                entries = list(self._running.items())
            # A job past its timeout is not renewed: if its thread hangs for good, the
            # lease runs out and another worker (or this one) rescues the job.
            renew = [
                job_id
                for job_id, entry in entries
                if entry.deadline is None or now < entry.deadline + lease_seconds
            ]
            progress = [
                (job_id, *reported)
                for job_id, entry in entries
                if (reported := entry.ctx.take_progress()) is not None
            ]
            try:
                lost = self._store.heartbeat(
                    worker_id=self.id,
                    job_ids=renew,
                    lease=self.lease,
                    check_ids=[job_id for job_id, _ in entries],
                    progress=progress,
                )
                for job_id, entry in entries:
                    if job_id in lost:
                        entry.ctx.cancel()
                self._maintenance.enqueue_due()
                if now >= next_rescue:
                    next_rescue = now + self.rescue_interval
                    self._maintenance.run_once(lease=self.lease)
            except StoreError as exc:
                log.error("heartbeat failed (%s); will try again", exc)
                self._bus.emit(events.WORKER_ERROR, worker=self, error=exc)
            except Exception as exc:  # never let lease renewal stop silently
                log.exception("heartbeat failed unexpectedly; will try again")
                self._bus.emit(events.WORKER_ERROR, worker=self, error=exc)
