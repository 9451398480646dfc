"""One trace across processes (docs/tracing.md): a real FastAPI request enqueues a job in its
transaction, a real ``sqljobs worker`` process runs it, and the request's span is the
ancestor of the enqueue's ``publish`` span, the attempt's ``process`` span and its steps'
spans, all in one trace; the worker's JSON log line of the task carries that trace. In link
mode the attempt starts a trace of its own, linked to the enqueue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sqljobs import JobState
from tests.helpers import app_module, eventually
from tests.processes import WorkerProcesses

WORKER_ARGS = ("--concurrency", "1", "--poll-interval", "0.05", "--log-format", "json")


@pytest.fixture
def app(db_url: str, engine: Any) -> Iterator[Any]:
    with app_module("tests.acceptance.otel_app", db_url) as module:
        module.jobs.create_schema()
        yield module


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(db_url, tmp_path, app="tests.acceptance.otel_app:jobs") as started:
        yield started


def hex_id(value: object) -> str:
    """``0x...`` as ReadableSpan.to_json writes ids -> bare hex."""
    return str(value).removeprefix("0x")


def by_name(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {span["name"]: span for span in spans}


def worker_spans(app: Any, path: Path, wanted: int) -> list[dict[str, Any]] | None:
    spans = app.read_spans(path)
    return spans if len(spans) >= wanted else None


def run_signup(app: Any, workers: WorkerProcesses, spans_file: Path, **env: str) -> int:
    """POST /signup; a worker process (spans to ``spans_file``) runs the job; returns its id."""
    worker = workers.start(*WORKER_ARGS, env={"SQLJOBS_TEST_SPANS": str(spans_file), **env})
    with TestClient(app.web) as client:
        job_id: int = client.post("/signup", params={"name": "Ada"}).json()["job_id"]
    eventually(lambda: app.jobs.get(job_id).state is JobState.COMPLETED, timeout=60)
    # process + two steps: each span is written as it ends
    eventually(partial(worker_spans, app, spans_file, 3), timeout=30)
    workers.stop_all([worker])
    return job_id


@pytest.mark.slow
def test_the_request_span_is_the_ancestor_of_publish_process_and_step_spans(
    app: Any, workers: WorkerProcesses, tmp_path: Path
) -> None:
    spans_file = tmp_path / "worker-spans.jsonl"
    job_id = run_signup(app, workers, spans_file)

    web_spans = {span.name: span for span in app.memory.get_finished_spans()}
    request, publish = web_spans["POST /signup"], web_spans["publish welcome"]
    trace_id = format(request.context.trace_id, "032x")
    assert request.parent is None
    assert publish.parent is not None and publish.parent.span_id == request.context.span_id
    assert format(publish.context.trace_id, "032x") == trace_id
    assert publish.kind.name == "PRODUCER"
    assert dict(publish.attributes or {}) == {
        "messaging.system": "sqljobs",
        "messaging.operation": "publish",
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
        "messaging.destination.name": "default",
        "sqljobs.task": "welcome",
    }
    stored = app.jobs.get(job_id).trace_context
    assert stored["traceparent"].split("-")[1:3] == [
        trace_id,
        format(publish.context.span_id, "016x"),
    ]

    spans = by_name(app.read_spans(spans_file))
    process = spans["process welcome"]
    assert hex_id(process["context"]["trace_id"]) == trace_id
    assert hex_id(process["parent_id"]) == format(publish.context.span_id, "016x")
    assert process["kind"] == "SpanKind.CONSUMER"
    assert process["attributes"] == {
        "messaging.system": "sqljobs",
        "messaging.operation": "process",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": "default",
        "messaging.message.id": str(job_id),
        "sqljobs.task": "welcome",
        "sqljobs.attempt": 1,
        "sqljobs.outcome": "completed",
    }
    for step in ("step render", "step send"):
        assert hex_id(spans[step]["context"]["trace_id"]) == trace_id
        assert spans[step]["parent_id"] == process["context"]["span_id"]

    output = workers.started[0].output().splitlines()
    records = [json.loads(line) for line in output if line.startswith("{")]  # not the banner
    task_line = next(r for r in records if r["message"] == "rendered the welcome for Ada")
    assert task_line["job_id"] == job_id
    assert task_line["trace_id"] == trace_id
    assert task_line["span_id"] == hex_id(process["context"]["span_id"])


@pytest.mark.slow
def test_in_link_mode_the_attempt_is_a_new_trace_linked_to_the_enqueue(
    app: Any, workers: WorkerProcesses, tmp_path: Path
) -> None:
    spans_file = tmp_path / "worker-spans.jsonl"
    run_signup(app, workers, spans_file, SQLJOBS_TEST_OTEL_LINKS="1")

    publish = {span.name: span for span in app.memory.get_finished_spans()}["publish welcome"]
    spans = by_name(app.read_spans(spans_file))
    process = spans["process welcome"]
    assert process["parent_id"] is None
    assert hex_id(process["context"]["trace_id"]) != format(publish.context.trace_id, "032x")
    assert [
        (hex_id(link["context"]["trace_id"]), hex_id(link["context"]["span_id"]))
        for link in process["links"]
    ] == [(format(publish.context.trace_id, "032x"), format(publish.context.span_id, "016x"))]
    assert spans["step render"]["parent_id"] == process["context"]["span_id"]
