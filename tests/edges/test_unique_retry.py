"""Issue 12, case 9: retrying a finished unique job respects its unique key.

Before, a retried job came back without its key (cleared when it finished), next to the job
enqueued since with the same key: two live jobs with one key, and later enqueues merged into
only one of them. Now retry gives the key back, or refuses (naming the holder) and changes
nothing; REST and dashboard answer 409, the CLI exits 4.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import sqljobs.fastapi
from sqljobs import JobQueue, JobState, Unique
from sqljobs.exceptions import UniqueKeyConflict
from sqljobs.registry import Task


def _discarded_unique_job(jobs: JobQueue, scope: str = "active") -> tuple[Task[..., Any], int]:
    @jobs.task(name="digest", max_attempts=1, unique=Unique(by_args=["user_id"], scope=scope))  # type: ignore[arg-type]
    def digest(user_id: int, note: str = "") -> None:
        if note == "fail":
            raise RuntimeError("digest failed")

    job_id = digest.enqueue(user_id=1, note="fail")
    jobs.drain(ids=[job_id])
    assert jobs.get(job_id).state is JobState.DISCARDED
    return digest, job_id


def _live(jobs: JobQueue, task: Task[..., Any]) -> list[int]:
    waiting = ("scheduled", "available", "running", "retryable")
    return sorted(job.id for job in jobs.list_jobs(task=task.name, state=list(waiting)))


@pytest.mark.parametrize("scope", ["active", "waiting"])
def test_retrying_a_discarded_unique_job_while_another_holds_its_key_is_refused(
    jobs: JobQueue, scope: str
) -> None:
    digest, old = _discarded_unique_job(jobs, scope)
    new = digest.enqueue(user_id=1)
    assert new != old

    with pytest.raises(
        UniqueKeyConflict, match=rf"job {old} was not retried: job {new} \(available\)"
    ):
        jobs.retry(old)

    assert jobs.get(old).state is JobState.DISCARDED
    assert _live(jobs, digest) == [new]
    assert digest.enqueue(user_id=1) == new


def test_retrying_a_discarded_unique_job_gives_its_key_back(jobs: JobQueue) -> None:
    digest, old = _discarded_unique_job(jobs)

    assert jobs.retry(old).state is JobState.AVAILABLE
    assert digest.enqueue(user_id=1) == old  # merged into the retried job
    assert _live(jobs, digest) == [old]


def test_retry_after_the_holder_finished_succeeds(jobs: JobQueue) -> None:
    digest, old = _discarded_unique_job(jobs)
    new = digest.enqueue(user_id=1)
    jobs.cancel(new)

    assert jobs.retry(old).state is JobState.AVAILABLE
    assert _live(jobs, digest) == [old]


def test_retrying_a_job_with_an_explicit_key_that_was_not_kept_is_refused(jobs: JobQueue) -> None:
    @jobs.task(max_attempts=1)
    def send(to: str) -> None:
        raise RuntimeError("down")

    old = send.configure(unique_key="welcome:a").enqueue(to="a")
    jobs.drain(ids=[old])
    with pytest.raises(UniqueKeyConflict, match="explicit unique_key"):
        jobs.retry(old)
    assert jobs.get(old).state is JobState.DISCARDED


@pytest.fixture
def client(jobs: JobQueue) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(sqljobs.fastapi.router(jobs, allow_unauthenticated=True), prefix="/admin")
    with TestClient(app) as test_client:
        yield test_client


def test_rest_and_dashboard_answer_409_naming_the_holder(
    jobs: JobQueue, client: TestClient
) -> None:
    digest, old = _discarded_unique_job(jobs)
    new = digest.enqueue(user_id=1)

    refused = client.post(f"/admin/api/jobs/{old}/retry")
    assert refused.status_code == 409
    assert f"job {new} (available) holds its unique key" in refused.json()["detail"]

    page = client.get(f"/admin/jobs/{old}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = client.post(f"/admin/jobs/{old}/retry", data={"csrf_token": token.group(1)})
    assert form.status_code == 409
    assert f"job {new} (available) holds its unique key" in form.text
    assert jobs.get(old).state is JobState.DISCARDED
