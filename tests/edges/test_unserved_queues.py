"""Issue 12, case 18a: a queue with waiting jobs that no live worker serves is shown as such
by ``sqljobs status`` (text and --json), the REST stats and the dashboard's overview.

docs/sync.md's own ``enqueue(..., queue="urgent")`` of a task registered on ``default`` is
never claimed by a default worker (it serves the queues of the registered tasks)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rich.console import Console

import sqljobs.fastapi
from sqljobs import JobQueue, _overview
from sqljobs.cli._output import render_status, status_json


@pytest.fixture
def client(jobs: JobQueue) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(sqljobs.fastapi.router(jobs, allow_unauthenticated=True), prefix="/admin")
    with TestClient(app) as test_client:
        yield test_client


def _status_text(jobs: JobQueue) -> str:
    out = io.StringIO()
    Console(file=out, width=300, color_system=None).print(render_status(jobs))
    return out.getvalue()


def test_status_and_dashboard_warn_of_a_queue_no_live_worker_serves(
    jobs: JobQueue, client: TestClient
) -> None:
    @jobs.task
    def send(to: str) -> None: ...

    send.enqueue(to="a")
    send.configure(queue="urgent").enqueue(to="b")
    with jobs.worker(poll_interval=60) as worker:
        assert worker.queues == ["default"]
        view = _overview.overview(jobs)
        assert [q.queue for q in view.unserved] == ["urgent"]

        report = status_json(jobs)
        assert {q["queue"]: q["served"] for q in report["queues"]} == {
            "default": True,
            "urgent": False,
        }
        assert len(report["warnings"]) == 1
        assert "queue 'urgent' has 1 waiting job(s) and no live worker" in report["warnings"][0]
        text = _status_text(jobs)
        assert "warning: queue 'urgent' has 1 waiting job(s)" in text
        assert "queue 'default'" not in text

        stats = client.get("/admin/api/stats").json()
        assert {q["queue"]: q["served"] for q in stats["queues"]} == {
            "default": True,
            "urgent": False,
        }
        page = client.get("/admin/").text
        assert 'data-unserved="urgent"' in page and 'data-unserved="default"' not in page


def test_without_any_worker_every_queue_with_waiting_jobs_is_unserved(jobs: JobQueue) -> None:
    @jobs.task
    def send(to: str) -> None: ...

    @jobs.task(queue="idle")
    def unused() -> None: ...

    send.enqueue(to="a")
    view = _overview.overview(jobs)
    assert [q.queue for q in view.unserved] == ["default"]  # "idle" has nothing waiting
