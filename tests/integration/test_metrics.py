"""Prometheus metrics fed by events and read from the database on scrape; structured logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from sqljobs import Backoff, JobQueue
from sqljobs.metrics import JobMetrics, JsonFormatter, instrument, mount_metrics


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def metrics(
    jobs: JobQueue, registry: CollectorRegistry, clock: ManualClock
) -> Iterator[JobMetrics]:
    instrumented = instrument(jobs, registry=registry, depth_cache_seconds=60, clock=clock)
    yield instrumented
    instrumented.close()


@pytest.fixture
def tasks(jobs: JobQueue) -> dict[str, Any]:
    attempts: list[int] = []

    @jobs.task(name="ok", queue="default")
    def ok() -> None:
        pass

    @jobs.task(name="flaky", queue="mail", max_attempts=2, backoff=Backoff(base=0.01, jitter=0))
    def flaky() -> None:
        attempts.append(1)
        raise RuntimeError("smtp down")

    return {"ok": ok, "flaky": flaky}


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_counters_and_histograms_follow_the_jobs(
    jobs: JobQueue, metrics: JobMetrics, registry: CollectorRegistry, tasks: dict[str, Any]
) -> None:
    jobs.enqueue_many(None, [tasks["ok"].prepare() for _ in range(3)])
    tasks["flaky"].enqueue()
    assert value(registry, "sqljobs_jobs_enqueued_total", queue="default", task="ok") == 3
    assert value(registry, "sqljobs_jobs_enqueued_total", queue="mail", task="flaky") == 1

    jobs.drain(include_scheduled=True)
    assert value(registry, "sqljobs_jobs_succeeded_total", queue="default", task="ok") == 3
    assert value(registry, "sqljobs_jobs_retried_total", queue="mail", task="flaky") == 1
    assert value(registry, "sqljobs_jobs_discarded_total", queue="mail", task="flaky") == 1
    assert value(registry, "sqljobs_jobs_cancelled_total", queue="mail", task="flaky") == 0

    duration = "sqljobs_job_duration_seconds_count"
    assert value(registry, duration, queue="default", task="ok", outcome="completed") == 3
    assert value(registry, duration, queue="mail", task="flaky", outcome="failed") == 1
    assert value(registry, duration, queue="mail", task="flaky", outcome="discarded") == 1
    latency = "sqljobs_job_pickup_latency_seconds"
    assert value(registry, f"{latency}_count", queue="default", task="ok") == 3
    assert 0 <= value(registry, f"{latency}_sum", queue="default", task="ok") < 30


def test_queue_depth_is_read_from_the_database_with_a_short_cache(
    jobs: JobQueue,
    metrics: JobMetrics,
    registry: CollectorRegistry,
    tasks: dict[str, Any],
    clock: ManualClock,
) -> None:
    for _ in range(2):
        tasks["ok"].enqueue()
    tasks["flaky"].enqueue(delay=3600)
    assert value(registry, "sqljobs_jobs", queue="default", state="available") == 2
    assert value(registry, "sqljobs_jobs", queue="mail", state="scheduled") == 1
    assert value(registry, "sqljobs_jobs", queue="default", state="completed") == 0
    assert value(registry, "sqljobs_queue_backlog_seconds", queue="default") >= 0
    reads = metrics.depth.reads

    jobs.drain()
    clock.now += 59  # within the cache window a scrape reuses the last read
    assert value(registry, "sqljobs_jobs", queue="default", state="available") == 2
    assert metrics.depth.reads == reads

    clock.now += 1  # the window passed: one scrape, one read
    scraped = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }
    assert metrics.depth.reads == reads + 1
    available = ("sqljobs_jobs", (("queue", "default"), ("state", "available")))
    completed = ("sqljobs_jobs", (("queue", "default"), ("state", "completed")))
    assert scraped[available] == 0 and scraped[completed] == 2


def test_mount_metrics_serves_the_text_format(jobs: JobQueue, tasks: dict[str, Any]) -> None:
    registry = CollectorRegistry()
    app = FastAPI()
    instrumented = mount_metrics(app, jobs, registry=registry)
    try:
        tasks["ok"].enqueue()
        jobs.drain()
        with TestClient(app) as client:
            response = client.get("/metrics")
        assert response.status_code == 200
        text = response.text
        assert 'sqljobs_jobs_succeeded_total{queue="default",task="ok"} 1.0' in text
        assert 'sqljobs_jobs{queue="default",state="completed"} 1.0' in text
        assert "# TYPE sqljobs_job_duration_seconds histogram" in text
        enqueued = {"queue": "default", "task": "ok"}
        assert registry.get_sample_value("sqljobs_jobs_enqueued_total", enqueued) == 1.0
    finally:
        instrumented.close()
    # Closed: its collectors left the registry (and stopped listening to events).
    assert registry.get_sample_value("sqljobs_jobs_enqueued_total", enqueued) is None


def test_each_attempt_is_logged_with_structured_fields(
    jobs: JobQueue, tasks: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    job_id = tasks["flaky"].enqueue()
    with caplog.at_level(logging.INFO, logger="sqljobs"):
        jobs.drain(include_scheduled=True)
    attempts = [r for r in caplog.records if hasattr(r, "sqljobs")]
    assert [r.sqljobs["outcome"] for r in attempts] == ["failed", "discarded"]
    first = attempts[0].sqljobs
    assert first["job_id"] == job_id and first["task"] == "flaky" and first["attempt"] == 1
    assert first["queue"] == "mail" and first["duration"] >= 0
    assert first["error"] == "RuntimeError: smtp down"

    line = json.loads(JsonFormatter().format(attempts[1]))
    assert line["level"] == "ERROR" and line["logger"] == "sqljobs.worker"
    assert line["outcome"] == "discarded" and line["attempt"] == 2 and line["job_id"] == job_id
    assert line["message"].startswith(f"job {job_id} (flaky) attempt 2 discarded")
    assert "time" in line and "duration" in line
