"""Worker: wires the claimer, executor threads, completer and heartbeat, and stops them.

While jobs are short, the claimer keeps claimed jobs waiting beyond the ``concurrency`` that
run (``prefetch``), so that one claim round trip feeds several jobs and a freed executor starts
its next job at once; a waiting job holds no database connection, so a worker never uses more
than ``concurrency + 3``. The heartbeat thread renews the leases of claimed jobs and rescues
jobs whose lease expired elsewhere.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta

from .. import events
from .._utils import Duration, to_seconds, to_timedelta
from ..exceptions import ConfigurationError, StoreError
from ..jobs import Job
from ..store import check_worker_engine, pool_capacity
from ._claimer import Claimer, PrefetchPolicy
from ._completer import Completer
from ._executors import ExecutorPool
from ._heartbeat import Heartbeat
from ._held import HeldJobs
from ._maintenance import Maintenance
from ._notifier import NotificationListener
from ._parts import HasWorkerParts, WorkerParts
from ._slots import Slots
from ._stats import WorkerStats
from ._watchdog import Watchdog

log = logging.getLogger("sqljobs.worker")
#: How long finished jobs are kept by default (``prune_after``).
DEFAULT_PRUNE_AFTER = timedelta(days=7)

#: Connections a worker uses besides its executors: claimer, completer and heartbeat.
OWN_CONNECTIONS = 3

__all__ = ["OWN_CONNECTIONS", "Worker", "WorkerStats"]


#: Worker ids are stored in 64-character columns (the workers table, each job's lease owner).
MAX_WORKER_ID = 64


def worker_id(name: str | None = None) -> str:
    """``name`` if it fits, else refused; by default ``host:pid:random`` with the host name
    shortened so the id always fits (the pid and the random suffix are kept whole)."""
    if name is not None:
        if not name or len(name) > MAX_WORKER_ID:
            raise ConfigurationError(
                f"worker name {name[:80]!r}{'...' if len(name) > 80 else ''} has {len(name)} "
                f"characters; a worker name has 1 to {MAX_WORKER_ID} characters"
            )
        return name
    tail = f":{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return socket.gethostname()[: MAX_WORKER_ID - len(tail)] + tail


class Worker:
    """Runs jobs from ``queues`` with ``concurrency`` threads until :meth:`stop`.

    Args:
        jobs: the :class:`~sqljobs.JobQueue` whose tasks it runs (anything with
            ``worker_parts()``; the worker uses only those parts).
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
        jobs: HasWorkerParts,
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
        prune_after: Duration | None = DEFAULT_PRUNE_AFTER,
        prune_interval: Duration = 300.0,
        periodic: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
        parts = jobs.worker_parts()
        self._parts = parts
        self.queues = list(queues) if queues else parts.registry.queues() or ["default"]
        #: Per-queue concurrency inside this worker, from ``queues={"mail": 2, ...}``.
        self.local_limits: dict[str, int] = {
            name: limit
            for name, limit in (queues.items() if isinstance(queues, Mapping) else ())
            if limit is not None
        }
        if any(limit < 1 for limit in self.local_limits.values()):
            raise ConfigurationError(f"per-queue limits must be at least 1: {self.local_limits}")
        self.concurrency = concurrency
        if prefetch is not None and prefetch < 0:
            raise ConfigurationError(f"prefetch must be 0 or more, got {prefetch}")
        #: None: automatic, from the recent run time of jobs (see ``prefetch`` above).
        self.prefetch = prefetch
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
        self.id = worker_id(name)
        self.stats = WorkerStats()
        self._store = parts.store
        self._bus = parts.bus
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._wakeup = threading.Event()
        self._started = False
        #: Finished jobs older than this are deleted (None: kept).
        self.prune_after = None if prune_after is None else to_timedelta(prune_after)
        self._build(
            parts,
            prune_after=self.prune_after,
            prune_interval=to_seconds(prune_interval, name="prune_interval"),
            periodic=periodic,
        )

    def _build(
        self,
        parts: WorkerParts,
        *,
        prune_after: timedelta | None,
        prune_interval: float,
        periodic: bool,
    ) -> None:
        """Make the units; :meth:`start` starts their threads."""
        policy = PrefetchPolicy(concurrency=self.concurrency, fixed=self.prefetch)
        # One slot per job this worker may hold, running or waiting for an executor.
        slots = Slots(self.concurrency + policy.most)
        self._held = HeldJobs(on_freed=self._wakeup.set)
        self._completer = Completer(
            runner=parts.runner,
            held=self._held,
            stats=self.stats,
            on_store_error=self._store_failed,
        )
        self._executors = ExecutorPool(
            size=self.concurrency,
            runner=parts.runner,
            held=self._held,
            slots=slots,
            completer=self._completer,
            stats=self.stats,
            on_ran=policy.record,
            on_store_error=self._store_failed,
        )
        self._slots = slots
        self._watchdog = Watchdog(
            store=self._store,
            held=self._held,
            runner=parts.runner,
            executors=self._executors,
            stats=self.stats,
            interval=self.heartbeat_interval,
            on_error=self._report_error,
        )
        self._heartbeat = Heartbeat(
            worker_id=self.id,
            store=self._store,
            held=self._held,
            maintenance=Maintenance(
                self._store,
                bus=self._bus,
                schedules=parts.schedules if periodic else (),
                prune_after=prune_after,
                prune_interval=prune_interval,
            ),
            lease=self.lease,
            interval=self.heartbeat_interval,
            rescue_interval=self.rescue_interval,
            on_error=self._report_error,
            end_lost=self._watchdog.end_lost,
        )
        self._claimer = Claimer(
            worker_id=self.id,
            store=self._store,
            registry=parts.registry,
            queues=self.queues,
            local_limits=self.local_limits,
            concurrency=self.concurrency,
            prefetch=policy,
            poll_interval=self.poll_interval,
            lease=self.lease,
            held=self._held,
            slots=slots,
            executors=self._executors,
            stats=self.stats,
            stopping=self._stopping,
            wakeup=self._wakeup,
            on_error=self._report_error,
            on_idle=self._report_idle,
            on_crash=self._stop_in_background,
        )
        listening = self._store.listening
        self._listener = (
            NotificationListener(
                listening.engine or self._store.engine,
                self._on_notification,
                on_listening=lambda: self._bus.emit(events.WORKER_LISTENING, worker=self),
                wake=self._store.wake_listeners,
                probe=self._store.probe_listeners if listening.mode == "probe" else None,
                on_unavailable=lambda why: self._bus.emit(
                    events.WORKER_POLLING, worker=self, reason=why
                ),
            )
            if self._store.support.listen_notify and listening.mode != "off"
            else None
        )
        self._listener_thread: threading.Thread | None = None

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
        check_worker_engine(engine)
        needed = self.concurrency + OWN_CONNECTIONS
        capacity = pool_capacity(engine)
        if capacity is not None and capacity < needed:
            raise ConfigurationError(
                f"concurrency={self.concurrency} needs up to {needed} connections "
                f"({self.concurrency} job sessions + {OWN_CONNECTIONS} for claiming, "
                f"completing and heartbeats), but the engine's pool holds at most {capacity} "
                "(pool_size + max_overflow). Lower concurrency, or raise pool_size/max_overflow "
                "in create_engine(...); an app serving requests from the same engine needs "
                "room for those too."
            )
        async_factory = self._parts.async_session_factory
        if async_factory is not None and any(
            t.is_async and t.wants_session for t in self._parts.registry.by_queue(self.queues)
        ):
            async_engine = async_factory.kw.get("bind")
            if async_engine is not None:
                async_capacity = pool_capacity(async_engine.sync_engine)
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
            hostname=socket.gethostname()[:255],
            pid=os.getpid(),
            queues=self.queues,
            concurrency=self.concurrency,
        )
        self._executors.start()
        self._completer.start()
        self._heartbeat.start()
        self._watchdog.start()
        if self._listener is not None:
            self._listener_thread = threading.Thread(
                target=self._listener.run, name="sqljobs-listener", daemon=True
            )
            self._listener_thread.start()
        self._claimer.start()
        self._parts.on_start(self)
        self._bus.emit(events.WORKER_STARTED, worker=self)
        log.info(
            "worker %s started: queues=%s concurrency=%d database=%s",
            self.id,
            ",".join(self.queues),
            self.concurrency,
            self._store.engine.url.render_as_string(hide_password=True),
        )

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
        """The jobs this worker holds: running, or claimed and waiting for an executor."""
        return self._held.jobs()

    def stop(self, grace: Duration | None = None) -> None:
        """Stop claiming, let running jobs finish within ``grace`` seconds, then give the
        rest back to the queue. Their sessions can then no longer commit."""
        if not self._started or self._stopping.is_set():
            return
        wait = self.grace if grace is None else to_seconds(grace, name="grace")
        running = len(self._held)
        log.info("worker %s stopping: up to %.1fs for %d running job(s)", self.id, wait, running)
        self._stopping.set()
        self._wakeup.set()
        self._bus.emit(events.WORKER_STOPPING, worker=self, running=running)
        deadline = time.monotonic() + wait
        self._give_back_waiting()
        self._held.wait_until_empty(deadline)
        # Store the completions already made before giving anything back.
        self._completer.finish(timeout=30)
        leftover = self._held.jobs()
        if leftover:
            self._release(leftover, wait)
        self._executors.stop()
        self._heartbeat.stop()
        self._watchdog.stop()
        if self._listener is not None:
            self._listener.stop()
        if not leftover:  # else an executor may be stuck in a task that never returns
            self._executors.join(timeout=5)
        self._heartbeat.join(timeout=5)
        self._watchdog.join(timeout=5)
        if self._listener_thread is not None:
            self._listener_thread.join(timeout=5)
        self._claimer.join(timeout=5)
        try:
            self._store.unregister_worker(self.id)
        except StoreError:
            log.warning("could not unregister worker %s", self.id, exc_info=True)
        self._parts.on_stop(self)
        self._stopped.set()
        self._bus.emit(events.WORKER_STOPPED, worker=self)
        log.info("worker %s stopped: %s", self.id, self.stats)

    def _release(self, leftover: list[Job], waited: float) -> None:
        try:
            released = self._store.release(leftover)
            log.warning(
                "worker %s released %d job(s) still running after %.1fs",
                self.id,
                released,
                waited,
            )
        except StoreError:
            log.exception("could not release jobs; they will be rescued when their lease expires")

    def _give_back_waiting(self) -> None:
        """At stop, release the claimed jobs no executor started, so that other workers can
        run them now rather than after this worker's grace period."""
        self._claimer.join(timeout=self.poll_interval + 30)  # lets a claim in flight finish
        waiting = self._executors.take_waiting()
        if not waiting:
            return
        try:
            self._store.release(waiting)
        except StoreError:
            log.exception("could not release waiting jobs; they will be rescued later")
        self._held.forget(waiting)
        self._slots.release(len(waiting))

    def _stop_in_background(self) -> None:
        threading.Thread(target=self.stop, name="sqljobs-stop", daemon=True).start()

    # -- reports from the units ------------------------------------------------------------

    def _report_error(self, error: BaseException) -> None:
        self._bus.emit(events.WORKER_ERROR, worker=self, error=error)

    def _report_idle(self, reason: str) -> None:
        self._bus.emit(events.WORKER_IDLE, worker=self, reason=reason)

    def _store_failed(self, failed: list[Job], exc: StoreError) -> None:
        self._held.leave_to_rescue(failed)
        log.error(
            "storing the outcome of job(s) %s failed (%s); they will be rescued when "
            "their lease expires",
            [job.id for job in failed],
            exc,
        )
        self._report_error(exc)
