"""``sqljobs.otel`` in one process on each database (docs/tracing.md): failing attempts and
steps record their errors, a job enqueued with no current span gets a root ``process`` span
and no stored context, tracing off (or OpenTelemetry missing) stores nothing and raises
nothing, async tasks and their steps are traced, and the metrics count what ran."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy import select

from sqljobs import Backoff, JobContext, JobQueue, JobState, otel
from sqljobs.metrics import JsonFormatter
from sqljobs.schema import jobs_table


class Traced:
    def __init__(self, jobs: JobQueue, **options: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.tracer = self.provider.get_tracer("tests")
        self.tracing = otel.instrument(
            jobs, tracer_provider=self.provider, meter_provider=self.meters, **options
        )

    def spans(self) -> dict[str, ReadableSpan]:
        return {span.name: span for span in self.exporter.get_finished_spans()}

    def points(self, metric: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        """The data points of ``metric`` by their sorted attributes."""
        data = self.reader.get_metrics_data()
        found: dict[tuple[tuple[str, Any], ...], Any] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for each in scope.metrics:
                    if each.name == metric:
                        for point in each.data.data_points:
                            found[tuple(sorted(dict(point.attributes or {}).items()))] = point
        return found


@pytest.fixture
def traced(jobs: JobQueue) -> Iterator[Traced]:
    traced = Traced(jobs)
    yield traced
    traced.tracing.close()


def stored_context(jobs: JobQueue, job_id: int) -> Any:
    with jobs.engine.connect() as conn:
        query = select(jobs_table.c.trace_context).where(jobs_table.c.id == job_id)
        return conn.execute(query).scalar_one()


def test_a_failing_attempt_records_the_exception_and_error_status(
    jobs: JobQueue, traced: Traced
) -> None:
    @jobs.task(name="doomed", max_attempts=1)
    def doomed() -> None:
        raise ValueError("the mail server said no")

    with traced.tracer.start_as_current_span("request"):
        job_id = doomed.enqueue()
    jobs.drain()
    assert jobs.get(job_id).state is JobState.DISCARDED
    process = traced.spans()["process doomed"]
    assert process.status.status_code is StatusCode.ERROR
    assert process.status.description == "ValueError: the mail server said no"
    assert (process.attributes or {})["sqljobs.outcome"] == "discarded"
    [event] = process.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.type"] == "ValueError"
    assert dict(event.attributes or {})["exception.message"] == "the mail server said no"
    assert "raise ValueError" in str(dict(event.attributes or {})["exception.stacktrace"])


def test_a_failing_step_records_its_error_on_its_span(jobs: JobQueue, traced: Traced) -> None:
    def charge() -> None:
        raise RuntimeError("card declined")

    @jobs.task(name="fulfil", max_attempts=2, backoff=Backoff(base=600, jitter=0))
    def fulfil(ctx: JobContext) -> None:
        ctx.step("charge", charge)

    fulfil.enqueue()
    jobs.drain()
    spans = traced.spans()
    step, process = spans["step charge"], spans["process fulfil"]
    assert step.parent is not None and step.parent.span_id == process.context.span_id
    assert step.status.status_code is StatusCode.ERROR
    assert [e.name for e in step.events] == ["exception"]
    assert (process.attributes or {})["sqljobs.outcome"] == "failed"
    assert process.status.status_code is StatusCode.ERROR


def test_a_job_enqueued_with_no_current_span_gets_a_root_process_span(
    jobs: JobQueue, traced: Traced
) -> None:
    @jobs.task(name="nightly")
    def nightly() -> None:
        return None

    job_id = nightly.enqueue()
    assert stored_context(jobs, job_id) is None
    with traced.tracer.start_as_current_span("the drainer's own span"):
        jobs.drain()
    spans = traced.spans()
    assert "publish nightly" not in spans
    assert spans["process nightly"].parent is None
    assert spans["process nightly"].status.status_code is StatusCode.UNSET


def test_without_instrument_nothing_is_stored_even_under_a_span(jobs: JobQueue) -> None:
    tracer = TracerProvider().get_tracer("tests")

    @jobs.task(name="plain")
    def plain() -> None:
        return None

    with tracer.start_as_current_span("request"):
        job_id = plain.enqueue()
    jobs.drain()
    assert stored_context(jobs, job_id) is None
    assert jobs.get(job_id).state is JobState.COMPLETED


def test_close_turns_tracing_off(jobs: JobQueue, traced: Traced) -> None:
    @jobs.task(name="plain")
    def plain() -> None:
        return None

    traced.tracing.close()
    with traced.tracer.start_as_current_span("request"):
        job_id = plain.enqueue()
    jobs.drain()
    assert stored_context(jobs, job_id) is None
    assert set(traced.spans()) == {"request"}


def test_without_opentelemetry_instrument_is_a_no_op(
    jobs: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import opentelemetry fails

    @jobs.task(name="plain")
    def plain(ctx: JobContext) -> None:
        ctx.logger.info("still logged")

    tracing = otel.instrument(jobs)
    assert tracing.enabled is False and otel.current_ids() is None
    job_id = plain.enqueue()
    jobs.drain()
    assert jobs.get(job_id).state is JobState.COMPLETED
    assert stored_context(jobs, job_id) is None
    record = logging.LogRecord("app", logging.INFO, "", 0, "hello", None, None)
    assert "trace_id" not in json.loads(JsonFormatter().format(record))


def test_an_async_task_and_its_async_step_are_traced(jobs: JobQueue, traced: Traced) -> None:
    async def fetch() -> int:
        return 7

    @jobs.task(name="crawl")
    async def crawl(ctx: JobContext) -> int:
        return int(await ctx.astep("fetch", fetch))

    with traced.tracer.start_as_current_span("request"):
        crawl.enqueue()
    jobs.drain()
    spans = traced.spans()
    request, publish = spans["request"], spans["publish crawl"]
    process, step = spans["process crawl"], spans["step fetch"]
    assert {s.context.trace_id for s in (publish, process, step)} == {request.context.trace_id}
    assert process.parent is not None and process.parent.span_id == publish.context.span_id
    assert step.parent is not None and step.parent.span_id == process.context.span_id


def test_json_log_records_carry_the_current_span_and_the_running_job(
    jobs: JobQueue, traced: Traced
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    app_log = logging.getLogger("tests.tracing")
    app_log.addHandler(handler)

    @jobs.task(name="noisy")
    def noisy() -> None:
        app_log.warning("inside the task")

    try:
        job_id = noisy.enqueue()
        jobs.drain()
        app_log.warning("outside any span")
    finally:
        app_log.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    process = traced.spans()["process noisy"]
    assert inside["job_id"] == job_id
    assert inside["trace_id"] == format(process.context.trace_id, "032x")
    assert inside["span_id"] == format(process.context.span_id, "016x")
    assert "trace_id" not in outside and "job_id" not in outside


def test_metrics_record_duration_wait_time_outcomes_and_enqueues(
    jobs: JobQueue, traced: Traced
) -> None:
    @jobs.task(name="ok", queue="q1")
    def ok() -> None:
        return None

    @jobs.task(name="bad", queue="q1", max_attempts=1)
    def bad() -> None:
        raise RuntimeError("no")

    ok.enqueue()
    ok.enqueue()
    bad.enqueue()
    jobs.drain()

    def key(task: str, outcome: str | None = None) -> tuple[tuple[str, Any], ...]:
        labels = {"sqljobs.queue": "q1", "sqljobs.task": task}
        if outcome is not None:
            labels["sqljobs.outcome"] = outcome
        return tuple(sorted(labels.items()))

    outcomes = {k: point.value for k, point in traced.points("sqljobs.job.outcomes").items()}
    assert outcomes == {key("ok", "completed"): 2, key("bad", "discarded"): 1}
    durations = traced.points("sqljobs.job.duration")
    assert {k: point.count for k, point in durations.items()} == {
        key("ok", "completed"): 2,
        key("bad", "discarded"): 1,
    }
    waits = traced.points("sqljobs.job.wait_time")
    assert {k: point.count for k, point in waits.items()} == {key("bad"): 1, key("ok"): 2}
    enqueued = {k: point.value for k, point in traced.points("sqljobs.jobs.enqueued").items()}
    assert enqueued == {key("bad"): 1, key("ok"): 2}


def test_the_jobs_of_a_graph_are_traced_as_children_of_its_enqueue(
    jobs: JobQueue, traced: Traced
) -> None:
    @jobs.task(name="fetch")
    def fetch() -> int:
        return 1

    @jobs.task(name="report")
    def report(total: int) -> int:
        return total

    graph = jobs.graph(name="nightly")
    first = graph.add(fetch)
    graph.add(report, depends_on=first, result_as="total")
    with traced.tracer.start_as_current_span("request"):
        graph.enqueue()
    jobs.drain()
    spans = traced.spans()
    publish = spans["publish fetch"]
    assert (publish.attributes or {})["messaging.batch.message_count"] == 2
    for name in ("process fetch", "process report"):
        parent = spans[name].parent
        assert parent is not None and parent.span_id == publish.context.span_id


def test_instrumenting_again_replaces_the_first_instrumentation(
    jobs: JobQueue, traced: Traced
) -> None:
    @jobs.task(name="once")
    def once() -> None:
        return None

    second = Traced(jobs)
    try:
        with second.tracer.start_as_current_span("request"):
            once.enqueue()
        jobs.drain()
    finally:
        second.tracing.close()
    assert set(second.spans()) == {"request", "publish once", "process once"}
    assert traced.spans() == {} and traced.points("sqljobs.jobs.enqueued") == {}
