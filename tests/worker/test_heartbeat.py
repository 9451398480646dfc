"""The heartbeat: one beat renews held leases, stores progress and cancels what was taken."""

from __future__ import annotations

import time
from datetime import timedelta

from sqljobs import JobQueue, JobState
from sqljobs._utils import utcnow
from sqljobs.jobs import Job
from sqljobs.worker._heartbeat import Heartbeat
from sqljobs.worker._held import HeldJobs
from sqljobs.worker._maintenance import Maintenance

LEASE = timedelta(seconds=30)


def setup(jobs: JobQueue, count: int) -> tuple[list[Job], HeldJobs, Heartbeat]:
    @jobs.task(name="noop")
    def noop(n: int) -> None: ...

    jobs.enqueue_many(None, [noop.prepare(n=n) for n in range(count)])
    claimed = jobs.store.claim(worker_id="w1", queues=["default"], limit=count, lease=LEASE)
    held = HeldJobs(on_freed=lambda: None)
    held.add(claimed, lambda _: 0.5)  # every job has a 0.5 s timeout
    heartbeat = Heartbeat(
        worker_id="w1",
        store=jobs.store,
        held=held,
        maintenance=Maintenance(
            jobs.store, bus=jobs.events, schedules=(), prune_after=None, prune_interval=300
        ),
        lease=LEASE,
        interval=1.0,
        rescue_interval=1000.0,
        on_error=lambda exc: None,
    )
    return claimed, held, heartbeat


def test_a_beat_renews_the_leases_of_held_jobs_and_stores_their_progress(
    jobs: JobQueue,
) -> None:
    claimed, held, heartbeat = setup(jobs, 2)
    before = {job.id: jobs.get(job.id).lease_expires_at for job in claimed}
    entry = held.start(claimed[0])
    assert entry is not None
    entry.ctx.set_progress(0.5, "half way")
    heartbeat.beat()
    after = {job.id: jobs.get(job.id) for job in claimed}
    for job_id, job in after.items():
        previous = before[job_id]
        assert job.lease_expires_at is not None and previous is not None
        assert job.lease_expires_at > previous
    assert (after[claimed[0].id].progress, after[claimed[0].id].progress_message) == (
        0.5,
        "half way",
    )
    assert after[claimed[1].id].progress is None


def test_a_job_past_its_timeout_and_a_lease_is_no_longer_renewed(jobs: JobQueue) -> None:
    claimed, held, heartbeat = setup(jobs, 1)
    entry = held.start(claimed[0])
    assert entry is not None and entry.started is not None
    # Its 0.5 s deadline passed more than a lease ago: it hangs for good.
    entry.deadline = time.monotonic() - LEASE.total_seconds() - 1
    before = jobs.get(claimed[0].id).lease_expires_at
    heartbeat.beat()
    assert jobs.get(claimed[0].id).lease_expires_at == before


def test_a_job_cancelled_by_an_operator_is_told_at_the_next_beat(jobs: JobQueue) -> None:
    claimed, held, heartbeat = setup(jobs, 2)
    entries = [held.start(job) for job in claimed]
    jobs.cancel(claimed[0].id)
    heartbeat.beat()
    assert [entry.ctx.cancelled for entry in entries if entry is not None] == [True, False]
    assert jobs.get(claimed[0].id).state is JobState.CANCELLED
    assert jobs.get(claimed[1].id).lease_expires_at > utcnow()  # type: ignore[operator]
