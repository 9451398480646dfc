"""Issue 12 case 1: one job's bad progress value must not stop a worker's heartbeats."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from sqljobs import JobQueue
from sqljobs.context import JobContext

POISON: list[Any] = [
    (0.5, "a\x00b"),
    (0.5, "lone \udc80"),
    (math.nan, ""),
    (math.inf, ""),
    (2, ""),
    (0.5, 42),
]


@pytest.mark.parametrize(("fraction", "message"), POISON)
def test_set_progress_refuses_unstorable_values(
    jobs: JobQueue, fraction: Any, message: Any
) -> None:
    @jobs.task
    def noop() -> None: ...

    job = jobs.get(noop.enqueue())
    with pytest.raises(ValueError, match="progress"):
        JobContext(job).set_progress(fraction, message)


def test_one_jobs_unstorable_progress_does_not_fail_other_jobs_lease_renewal(
    jobs: JobQueue,
) -> None:
    @jobs.task
    def noop() -> None: ...

    ids = [noop.enqueue() for _ in range(2)]
    store = jobs.store
    claimed = store.claim(worker_id="w1", queues=["default"], limit=2, lease=timedelta(seconds=5))
    assert {j.id for j in claimed} == set(ids)
    before = {j.id: j.lease_expires_at for j in (jobs.get(i) for i in ids)}
    lost = store.heartbeat(
        worker_id="w1",
        job_ids=ids,
        lease=timedelta(minutes=10),
        check_ids=ids,
        progress=[(ids[0], 0.5, "bad \x00 message"), (ids[1], 0.25, "fine")],
    )
    assert lost == set()
    after = {i: jobs.get(i) for i in ids}
    for i in ids:
        renewed, previous = after[i].lease_expires_at, before[i]
        assert renewed is not None and previous is not None and renewed > previous
    assert after[ids[1]].progress == 0.25
