"""The job graphs' REST endpoints, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

import sqljobs.fastapi
from sqljobs import JobQueue, JobState
from tests.integration.test_rest_api import AUTH, PREFIX, require_token


@pytest.fixture
def client(jobs: JobQueue) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(
        sqljobs.fastapi.router(jobs, dependencies=[Depends(require_token)]), prefix=PREFIX
    )
    with TestClient(app, headers=AUTH) as test_client:
        yield test_client


@pytest.fixture
def graph(jobs: JobQueue) -> dict[str, Any]:
    @jobs.task(name="number")
    def number(value: int) -> int:
        return value

    g = jobs.graph(name="two steps", on_failure="continue")
    first = g.add(number, value=1)
    second = g.add(number, depends_on=first, result_as="value")
    return {"id": g.enqueue(), "first": first.id, "second": second.id}


def test_get_graph_gives_each_job_with_its_state_and_dependencies(
    client: TestClient, graph: dict[str, Any]
) -> None:
    answer = client.get(f"{PREFIX}/api/graphs/{graph['id']}")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["name"], body["on_failure"], body["state"]) == ("two steps", "continue", "running")
    assert body["counts"] == {"available": 1, "blocked": 1}
    assert [(j["id"], j["state"], j["depends_on"]) for j in body["jobs"]] == [
        (graph["first"], "available", []),
        (graph["second"], "blocked", [graph["first"]]),
    ]
    missing = client.get(f"{PREFIX}/api/graphs/987654")
    assert (missing.status_code, missing.json()) == (404, {"detail": "no job graph with id 987654"})


def test_cancel_graph_cancels_its_unfinished_jobs_and_refuses_a_forged_origin(
    client: TestClient, jobs: JobQueue, graph: dict[str, Any]
) -> None:
    forged = client.post(
        f"{PREFIX}/api/graphs/{graph['id']}/cancel", headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    answer = client.post(f"{PREFIX}/api/graphs/{graph['id']}/cancel")
    assert answer.status_code == 200
    assert answer.json() == {"cancelled": [graph["first"], graph["second"]]}
    assert {j.state for j in jobs.get_graph(graph["id"]).jobs} == {JobState.CANCELLED}
