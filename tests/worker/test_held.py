"""HeldJobs: the table of jobs a worker holds, shared by its threads (no database)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from sqljobs import Job, JobState
from sqljobs.worker._held import HeldJobs


def job(job_id: int, queue: str = "default") -> Job:
    now = datetime.now(timezone.utc)
    return Job(
        id=job_id,
        task="t",
        queue=queue,
        args={},
        state=JobState.RUNNING,
        priority=0,
        attempt=1,
        max_attempts=3,
        run_at=now,
        created_at=now,
    )


def no_timeout(_: Job) -> float | None:
    return None


def test_holding_counts_jobs_until_they_ran_and_occupancy_counts_every_queue() -> None:
    held = HeldJobs(on_freed=lambda: None)
    held.add([job(1, "mail"), job(2, "mail"), job(3)], no_timeout)
    entry = held.start(job(1, "mail"))
    assert entry is not None and entry.started is not None
    held.mark_ran(entry)
    per_queue, holding = held.occupancy()
    assert holding == held.holding() == 2
    assert per_queue == {"mail": 2, "default": 1}  # a ran job still counts for its queue limit
    assert len(held) == 3


def test_start_sets_the_deadline_from_the_tasks_timeout() -> None:
    held = HeldJobs(on_freed=lambda: None)
    held.add([job(1), job(2)], lambda j: 5.0 if j.id == 1 else None)
    timed = held.start(job(1))
    untimed = held.start(job(2))
    assert timed is not None and timed.started is not None
    assert timed.deadline == timed.started + 5.0
    assert untimed is not None and untimed.deadline is None
    assert held.start(job(99)) is None  # not held: nothing to start


def test_forget_frees_room_and_wakes_a_waiter_for_an_empty_table() -> None:
    freed: list[bool] = []
    held = HeldJobs(on_freed=lambda: freed.append(True))
    held.add([job(1), job(2)], no_timeout)
    waiter_done = threading.Event()
    emptied: list[bool] = []

    def wait() -> None:
        emptied.append(held.wait_until_empty(time.monotonic() + 30))
        waiter_done.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    held.forget([job(1)])
    held.forget([job(2)])
    waiter.join(timeout=30)
    assert emptied == [True]
    assert freed == [True, True]
    assert held.jobs() == []


def test_wait_until_empty_gives_up_at_its_deadline() -> None:
    held = HeldJobs(on_freed=lambda: None)
    held.add([job(1)], no_timeout)
    assert held.wait_until_empty(time.monotonic()) is False
    assert [j.id for j in held.jobs()] == [1]


def test_jobs_left_to_rescue_are_forgotten_and_remembered_apart() -> None:
    """A job whose outcome could not be stored is no longer held, but a worker's give-back
    after a lost claim answer must leave it to rescue (it ran): its id stays listed."""
    freed: list[int] = []
    held = HeldJobs(on_freed=lambda: freed.append(1))
    ran, waiting = job(1), job(2)
    held.add([ran, waiting], no_timeout)
    held.leave_to_rescue([ran])
    assert [job.id for job in held.jobs()] == [2]
    assert held.left_to_rescue() == [1]
    assert freed == [1]
