"""OpenTelemetry tracing and metrics for a :class:`~sqljobs.JobQueue` (extra ``sqljobs[otel]``).

Turn it on once per process, in the module that builds the queue (so web processes and
``sqljobs worker`` processes both run it)::

    from sqljobs import otel
    tracing = otel.instrument(jobs)        # the global tracer and meter providers

Then (docs/tracing.md):

- ``task.enqueue(...)`` under a current span creates a ``publish <task>`` span (PRODUCER) and
  stores its W3C trace context (``traceparent``/``tracestate``) with the job;
- each attempt runs in a ``process <task>`` span (CONSUMER), a child of that stored context
  (or, with ``links=True``, the root of a trace of its own with a Link to it), current while
  the task runs: the task's own spans and log records belong to it;
- each durable step (``ctx.step``/``astep``) runs in a ``step <name>`` span, its child;
- errors are recorded on the span (``record_exception``, status ERROR);
- metrics ``sqljobs.job.duration`` and ``sqljobs.job.wait_time`` (histograms, seconds) and
  ``sqljobs.job.outcomes`` / ``sqljobs.jobs.enqueued`` (counters).

Without OpenTelemetry installed, :func:`instrument` changes nothing and returns a
:class:`Tracing` whose ``enabled`` is False.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import events
from ._utils import utcnow
from .instrumentation import AttemptScope, NoInstrumentation
from .jobs import Job, JobError, NewJob

if TYPE_CHECKING:
    from .jobqueue import JobQueue

__all__ = ["INSTRUMENTATION_NAME", "Tracing", "current_ids", "instrument"]

log = logging.getLogger("sqljobs.otel")

#: The instrumentation scope name of sqljobs' tracer and meter.
INSTRUMENTATION_NAME = "sqljobs"
#: ``messaging.system`` of every span.
MESSAGING_SYSTEM = "sqljobs"


def _otel() -> Any:
    """The ``opentelemetry`` API modules, or None when it is not installed."""
    try:
        from opentelemetry import context, metrics, propagate, trace
    except ImportError:
        return None
    return context, metrics, propagate, trace


def current_ids() -> tuple[str, str] | None:
    """The current span's ``(trace_id, span_id)`` in hex, if a valid span is current (and
    OpenTelemetry is installed); else None. :class:`~sqljobs.metrics.JsonFormatter` adds them
    to each record."""
    modules = _otel()
    if modules is None:
        return None
    span_context = modules[3].get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def _attributes(job_task: str, queue: str, operation: str, kind: str) -> dict[str, Any]:
    return {
        "messaging.system": MESSAGING_SYSTEM,
        # The messaging conventions' operation: its name, its type, and the older attribute.
        "messaging.operation": operation,
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
        "messaging.destination.name": queue,
        "sqljobs.task": job_task,
    }


class _Attempt:
    """The span of one attempt: :meth:`ended` records the outcome on it."""

    def __init__(self, span: Any, trace: Any) -> None:
        self._span = span
        self._trace = trace

    def ended(self, outcome: str, error: JobError | None, exception: BaseException | None) -> None:
        self._span.set_attribute("sqljobs.outcome", outcome)
        if outcome not in ("failed", "discarded"):
            return
        if exception is not None:
            self._span.record_exception(exception)
        elif error is not None:
            self._span.add_event(
                "exception",
                {"exception.type": error.type, "exception.message": error.message},
            )
        message = f"{error.type}: {error.message}" if error is not None else outcome
        self._span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, message))


class Tracing(NoInstrumentation):
    """The instrumentation :func:`instrument` installs on a queue (see the module docs).

    Args:
        jobs: the queue to instrument.
        tracer_provider: where spans go (default: OpenTelemetry's global provider, looked up
            when each span starts, so setting it after ``instrument`` works too).
        meter_provider: where metrics go (default: the global one).
        links: False makes each attempt's span a child of the enqueue's context; True makes
            it the root of a new trace with a Link to that context (for long waits, fan-out
            and retries: one trace per attempt).
    """

    def __init__(
        self,
        jobs: JobQueue,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        links: bool = False,
    ) -> None:
        self.jobs = jobs
        self.links = links
        modules = _otel()
        #: False when OpenTelemetry is not installed: nothing is traced or measured.
        self.enabled = modules is not None
        self._unsubscribe: list[Any] = []
        if modules is None:
            return
        self._context, metrics, self._propagate, self._trace = modules
        from . import __version__

        self._tracer = self._trace.get_tracer(
            INSTRUMENTATION_NAME, __version__, tracer_provider=tracer_provider
        )
        meter = metrics.get_meter(INSTRUMENTATION_NAME, __version__, meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            "sqljobs.job.duration", unit="s", description="Run time of one attempt"
        )
        self.wait_time = meter.create_histogram(
            "sqljobs.job.wait_time",
            unit="s",
            description="Time from when a job was due (run_at) to when its attempt started",
        )
        self.outcomes = meter.create_counter(
            "sqljobs.job.outcomes", unit="{attempt}", description="Attempts by outcome"
        )
        self.enqueued = meter.create_counter(
            "sqljobs.jobs.enqueued", unit="{job}", description="Jobs enqueued (and committed)"
        )
        previous = jobs.hooks.current
        if isinstance(previous, Tracing):
            previous.close()  # instrumenting again replaces it (no metric counted twice)
        bus = jobs.events
        self._unsubscribe = [bus.subscribe(events.JOB_ENQUEUED, self._on_enqueued)]
        self._unsubscribe.append(bus.subscribe(events.JOB_STARTED, self._on_started))
        for name in (
            events.JOB_COMPLETED,
            events.JOB_FAILED,
            events.JOB_DISCARDED,
            events.JOB_CANCELLED,
            events.JOB_SNOOZED,
            events.JOB_LEASE_LOST,
        ):
            self._unsubscribe.append(bus.subscribe(name, self._on_finished))
        jobs.hooks.install(self)

    def close(self) -> None:
        """Stop tracing and measuring ``jobs`` (its hooks go back to no-ops)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self.jobs.hooks.current is self:
            self.jobs.hooks.install(None)

    # -- spans ---------------------------------------------------------------------------

    @contextmanager
    def publishing(self, rows: Sequence[NewJob]) -> Iterator[list[NewJob]]:
        """A PRODUCER span around the insert, under the current span; its context goes
        with each row. With no current span (a cron slot, a script) nothing is traced: the
        job's attempts then start traces of their own."""
        current = self._trace.get_current_span().get_span_context()
        if not rows or not current.is_valid:
            yield list(rows)
            return
        first = rows[0]
        attributes = _attributes(first.task, first.queue, "publish", "send")
        if len(rows) > 1:
            attributes["messaging.batch.message_count"] = len(rows)
        with self._tracer.start_as_current_span(
            f"publish {first.task}", kind=self._trace.SpanKind.PRODUCER, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            self._propagate.inject(carrier)
            yield [replace(row, trace_context=dict(carrier)) for row in rows]

    @contextmanager
    def attempt(self, job: Job) -> Iterator[AttemptScope]:
        """The CONSUMER span of one attempt, current while it runs."""
        parent = self._propagate.extract(job.trace_context) if job.trace_context else None
        linked = self._trace.get_current_span(parent).get_span_context() if parent else None
        links = []
        if self.links and linked is not None and linked.is_valid:
            links = [self._trace.Link(linked, {"sqljobs.link": "enqueue"})]
        # No stored context: a root span (not a child of whatever the worker thread holds).
        context = parent if parent is not None and not self.links else self._context.Context()
        attributes = _attributes(job.task, job.queue, "process", "process")
        attributes |= {"messaging.message.id": str(job.id), "sqljobs.attempt": job.attempt}
        span = self._tracer.start_span(
            f"process {job.task}",
            context=context,
            kind=self._trace.SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )
        with self._trace.use_span(span, end_on_exit=True):
            yield _Attempt(span, self._trace)

    @contextmanager
    def step(self, job: Job, name: str) -> Iterator[None]:
        """A span per run of a durable step, a child of the attempt's; errors recorded."""
        attributes = {
            "sqljobs.step": name,
            "sqljobs.task": job.task,
            "sqljobs.attempt": job.attempt,
            "messaging.message.id": str(job.id),
        }
        with self._tracer.start_as_current_span(f"step {name}", attributes=attributes):
            yield

    # -- metrics -------------------------------------------------------------------------

    def _on_enqueued(self, _name: str, data: dict[str, Any]) -> None:
        for row in data.get("new_jobs") or ():
            self.enqueued.add(1, {"sqljobs.queue": row.queue, "sqljobs.task": row.task})

    def _on_started(self, _name: str, data: dict[str, Any]) -> None:
        job: Job = data["job"]
        started = job.started_at or utcnow()
        waited = max((started - job.run_at).total_seconds(), 0.0)
        self.wait_time.record(waited, {"sqljobs.queue": job.queue, "sqljobs.task": job.task})

    def _on_finished(self, name: str, data: dict[str, Any]) -> None:
        job: Job = data["job"]
        labels = {
            "sqljobs.queue": job.queue,
            "sqljobs.task": job.task,
            "sqljobs.outcome": name.rsplit(".", 1)[-1],
        }
        self.outcomes.add(1, labels)
        duration = data.get("duration")
        if isinstance(duration, (int, float)):
            self.duration.record(duration, labels)


def instrument(
    jobs: JobQueue,
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    links: bool = False,
) -> Tracing:
    """Trace and measure ``jobs`` with OpenTelemetry; see :class:`Tracing`.

    Example:
        >>> from sqljobs import otel
        >>> tracing = otel.instrument(jobs)                    # doctest: +SKIP
        >>> tracing = otel.instrument(jobs, links=True)        # doctest: +SKIP

    Returns a :class:`Tracing` (``tracing.close()`` turns it off). Without OpenTelemetry
    installed it is a no-op (``tracing.enabled`` is False) and logs why once.
    """
    tracing = Tracing(
        jobs, tracer_provider=tracer_provider, meter_provider=meter_provider, links=links
    )
    if not tracing.enabled:
        log.info(
            "sqljobs.otel.instrument: OpenTelemetry is not installed, so nothing is traced "
            "(pip install 'sqljobs[otel]')"
        )
    return tracing
