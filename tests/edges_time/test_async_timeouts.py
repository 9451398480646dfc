"""Issue 12, case 13: an async task's timeout holds even when the task blocks the event loop
(sync code without ``await``, which cannot be cancelled): it is checked before the commit."""

from __future__ import annotations

import threading

import pytest

from sqljobs import JobQueue, JobState


def test_async_timeouts_are_enforced_around_blocking_code(
    jobs: JobQueue, caplog: pytest.LogCaptureFixture
) -> None:
    effects: list[int] = []

    @jobs.task(timeout=0.1, max_attempts=1)
    async def blocks_the_loop(n: int) -> int:
        threading.Event().wait(0.4)  # blocking, never awaits: the loop cannot cancel it
        effects.append(n)
        return n

    job_id = blocks_the_loop.enqueue(n=1)
    jobs.drain()
    job = jobs.get(job_id)
    assert effects == [1]  # it did run to its end...
    assert job.state is JobState.DISCARDED and job.result is None  # ...but was not completed
    assert job.errors[-1].type == "sqljobs.exceptions.JobTimeout"
    assert "blocked the event loop" in caplog.text
