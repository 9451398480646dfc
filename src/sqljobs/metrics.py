"""Prometheus metrics and structured logs (extra ``sqljobs[metrics]`` for the metrics).

Example:
    >>> from sqljobs.metrics import instrument, mount_metrics
    >>> metrics = instrument(jobs)          # subscribe to the queue's events
    >>> mount_metrics(app, jobs)            # GET /metrics on a FastAPI/Starlette app

Metrics (``queue`` and ``task`` labels):

- ``sqljobs_jobs_enqueued_total``, ``sqljobs_jobs_succeeded_total``,
  ``sqljobs_jobs_retried_total`` (failed attempts that will be retried),
  ``sqljobs_jobs_discarded_total``, ``sqljobs_jobs_cancelled_total``: counters fed by the
  :mod:`sqljobs.events` this process emits (a worker counts the jobs *it* ran; a web process
  counts the jobs *it* enqueued, including ones whose transaction was later rolled back).
- ``sqljobs_job_duration_seconds``: histogram of attempt run time (label ``outcome`` too).
- ``sqljobs_job_pickup_latency_seconds``: histogram of the time from when a job was due
  (``run_at``) to when a worker claimed it.
- ``sqljobs_jobs``: gauge of jobs per ``queue`` and ``state``, read from the database when
  scraped (cached for ``depth_cache_seconds`` so frequent scrapes cost one query), so it is
  right whichever process scrapes; ``sqljobs_queue_backlog_seconds``: age of the oldest
  available job per queue.

Structured logs need no extra: :class:`JsonFormatter` (re-exported here) writes each record
as a JSON line with the attempt's ``job_id``, ``task``, ``attempt``, ``outcome`` and
``duration`` as fields.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import events
from ._logging import JsonFormatter
from ._utils import utcnow
from .exceptions import ConfigurationError, SqljobsError
from .jobs import Job, JobState

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .jobqueue import JobQueue

__all__ = ["JobMetrics", "JsonFormatter", "instrument", "metrics_app", "mount_metrics"]

#: Buckets (seconds) for run time and pickup latency: 1 ms to 10 min.
DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError(
            "sqljobs metrics need prometheus-client: pip install 'sqljobs[metrics]'"
        ) from None
    return prometheus_client


def _gauge_family() -> Any:
    _prometheus()
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily


class _DepthCollector:
    """Reads jobs per queue and state from the database at scrape time, with a short cache."""

    def __init__(
        self,
        jobs: JobQueue,
        *,
        namespace: str,
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jobs = jobs
        self._namespace = namespace
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._counts: dict[tuple[str, JobState], int] = {}
        self._oldest: dict[str, Any] = {}
        self.reads = 0

    def _read(self) -> None:
        with self._lock:
            if self._clock() - self._read_at < self._cache_seconds:
                return
            try:
                self._counts = self._jobs.store.count_by_state()
                self._oldest = self._jobs.store.oldest_available()
            except SqljobsError:
                # A scrape must not fail because the database blipped: keep the last values.
                return
            self._read_at = self._clock()
            self.reads += 1

    def describe(self) -> Iterator[Any]:
        # Describing without reading keeps registration cheap (no query at import time).
        gauge = _gauge_family()
        yield gauge(
            f"{self._namespace}_jobs", "Jobs per queue and state", labels=["queue", "state"]
        )
        yield gauge(
            f"{self._namespace}_queue_backlog_seconds",
            "Age of the oldest available job per queue",
            labels=["queue"],
        )

    def collect(self) -> Iterator[Any]:
        self._read()
        gauge = _gauge_family()
        depth = gauge(
            f"{self._namespace}_jobs", "Jobs per queue and state", labels=["queue", "state"]
        )
        queues = sorted({q for q, _ in self._counts} | set(self._jobs.registry.queues()))
        for queue in queues:
            for state in JobState:
                depth.add_metric([queue, state.value], self._counts.get((queue, state), 0))
        yield depth
        backlog = gauge(
            f"{self._namespace}_queue_backlog_seconds",
            "Age of the oldest available job per queue",
            labels=["queue"],
        )
        now = utcnow()
        for queue in queues:
            oldest = self._oldest.get(queue)
            backlog.add_metric([queue], (now - oldest).total_seconds() if oldest else 0.0)
        yield backlog


class JobMetrics:
    """Prometheus metrics for one :class:`~sqljobs.JobQueue`; see the module docstring.

    Args:
        jobs: the queue whose events are counted and whose table is read on scrape.
        registry: where the metrics are registered (default: prometheus_client's global
            ``REGISTRY``). Instrument each JobQueue into its own registry, or only one
            JobQueue per registry: metric names are unique within a registry.
        namespace: prefix of every metric name.
        depth_cache_seconds: how long database reads for the gauges are reused.
        clock: the monotonic clock (seconds) that cache window is measured on; tests pass a
            controllable one.
    """

    def __init__(
        self,
        jobs: JobQueue,
        *,
        registry: CollectorRegistry | None = None,
        namespace: str = "sqljobs",
        depth_cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        prom = _prometheus()
        self.jobs = jobs
        self.registry = registry if registry is not None else prom.REGISTRY
        labels = ["queue", "task"]

        def counter(name: str, text: str) -> Any:
            return prom.Counter(name, text, labels, namespace=namespace, registry=self.registry)

        self.enqueued = counter("jobs_enqueued", "Jobs enqueued")
        self.succeeded = counter("jobs_succeeded", "Jobs that completed")
        self.retried = counter("jobs_retried", "Failed attempts that will be retried")
        self.discarded = counter("jobs_discarded", "Jobs discarded after their last attempt")
        self.cancelled = counter("jobs_cancelled", "Jobs cancelled while running")
        self.duration = prom.Histogram(
            "job_duration_seconds",
            "Run time of one attempt",
            [*labels, "outcome"],
            namespace=namespace,
            registry=self.registry,
            buckets=DURATION_BUCKETS,
        )
        self.pickup_latency = prom.Histogram(
            "job_pickup_latency_seconds",
            "Time from when a job was due (run_at) to when a worker claimed it",
            labels,
            namespace=namespace,
            registry=self.registry,
            buckets=DURATION_BUCKETS,
        )
        self.depth = _DepthCollector(
            jobs, namespace=namespace, cache_seconds=depth_cache_seconds, clock=clock
        )
        self.registry.register(self.depth)
        bus = jobs.events
        self._unsubscribe: list[Callable[[], None]] = [
            bus.subscribe(events.JOB_ENQUEUED, self._on_enqueued),
            bus.subscribe(events.JOB_STARTED, self._on_started),
            bus.subscribe(events.JOB_COMPLETED, self._on_finished),
            bus.subscribe(events.JOB_FAILED, self._on_finished),
            bus.subscribe(events.JOB_DISCARDED, self._on_finished),
            bus.subscribe(events.JOB_CANCELLED, self._on_finished),
            bus.subscribe(events.JOB_SNOOZED, self._on_finished),
            bus.subscribe(events.JOB_LEASE_LOST, self._on_finished),
        ]

    def close(self) -> None:
        """Stop counting and unregister every metric from the registry."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for metric in (
            self.enqueued,
            self.succeeded,
            self.retried,
            self.discarded,
            self.cancelled,
            self.duration,
            self.pickup_latency,
            self.depth,
        ):
            self.registry.unregister(metric)

    def _on_enqueued(self, _name: str, data: dict[str, Any]) -> None:
        for row in data.get("new_jobs") or ():
            self.enqueued.labels(row.queue, row.task).inc()

    def _on_started(self, _name: str, data: dict[str, Any]) -> None:
        job: Job = data["job"]
        # The attempt starts now (a claimed job's snapshot has no started_at until it runs).
        started = job.started_at or utcnow()
        waited = (started - job.run_at).total_seconds()
        self.pickup_latency.labels(job.queue, job.task).observe(max(waited, 0.0))

    def _on_finished(self, name: str, data: dict[str, Any]) -> None:
        job: Job = data["job"]
        outcome = name.rsplit(".", 1)[-1]
        counter = {
            events.JOB_COMPLETED: self.succeeded,
            events.JOB_FAILED: self.retried,
            events.JOB_DISCARDED: self.discarded,
            events.JOB_CANCELLED: self.cancelled,
        }.get(name)
        if counter is not None:
            counter.labels(job.queue, job.task).inc()
        duration = data.get("duration")
        if isinstance(duration, (int, float)):
            self.duration.labels(job.queue, job.task, outcome).observe(duration)


def instrument(
    jobs: JobQueue,
    *,
    registry: CollectorRegistry | None = None,
    namespace: str = "sqljobs",
    depth_cache_seconds: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> JobMetrics:
    """Start counting ``jobs``' events into Prometheus metrics; see :class:`JobMetrics`."""
    return JobMetrics(
        jobs,
        registry=registry,
        namespace=namespace,
        depth_cache_seconds=depth_cache_seconds,
        clock=clock,
    )


def metrics_app(registry: CollectorRegistry | None = None) -> Any:
    """An ASGI app serving ``registry`` (default: the global one) in Prometheus' text format."""
    prom = _prometheus()
    return prom.make_asgi_app(registry=registry if registry is not None else prom.REGISTRY)


def mount_metrics(
    app: Any,
    jobs: JobQueue,
    *,
    path: str = "/metrics",
    registry: CollectorRegistry | None = None,
    namespace: str = "sqljobs",
    depth_cache_seconds: float = 5.0,
) -> JobMetrics:
    """Instrument ``jobs`` and serve the metrics at ``path`` of a FastAPI/Starlette ``app``.

    Returns the :class:`JobMetrics`. If ``path`` is reachable from outside, protect it like
    any admin route (e.g. at the proxy).
    """
    metrics = instrument(
        jobs, registry=registry, namespace=namespace, depth_cache_seconds=depth_cache_seconds
    )
    app.mount(path, metrics_app(metrics.registry))
    return metrics
