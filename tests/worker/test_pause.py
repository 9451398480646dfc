"""Pausing a queue (issue 15): a running worker stops claiming it within one poll, enqueues
go on, and resuming lets the waiting jobs run."""

from __future__ import annotations

from sqljobs import JobQueue, JobState, events
from tests.helpers import EventLog, eventually


def _task(jobs: JobQueue, queue: str) -> object:
    @jobs.task(name=f"job_in_{queue}", queue=queue)
    def job(n: int = 0) -> None:
        pass

    return job


def test_a_running_worker_stops_claiming_a_paused_queue_within_one_poll(jobs: JobQueue) -> None:
    mail = _task(jobs, "mail")
    idle = EventLog(jobs, events.WORKER_IDLE)
    with jobs.worker(queues=["mail"], concurrency=1, poll_interval=0.05):
        idle.wait_for(events.WORKER_IDLE, reason="no jobs")
        jobs.pause_queue("mail")
        stale_rounds = idle.count(events.WORKER_IDLE, reason="no jobs")
        idle.wait_for(events.WORKER_IDLE, reason="paused")
        # At most one claim round ran on the settings read before the pause (the one in
        # flight, and one that had read them just before): then the worker re-read them.
        assert idle.count(events.WORKER_IDLE, reason="no jobs") - stale_rounds <= 2

        job_id = mail.enqueue()  # type: ignore[attr-defined]
        seen = idle.count(events.WORKER_IDLE, reason="paused")
        idle.wait_for(events.WORKER_IDLE, reason="paused", more_than=seen + 5)
        assert jobs.get(job_id).state is JobState.AVAILABLE

        jobs.resume_queue("mail")
        eventually(lambda: jobs.get(job_id).state is JobState.COMPLETED)


def test_pausing_one_queue_leaves_the_worker_serving_the_others(jobs: JobQueue) -> None:
    mail, reports = _task(jobs, "mail"), _task(jobs, "reports")
    jobs.pause_queue("mail")
    idle = EventLog(jobs, events.WORKER_IDLE)
    with jobs.worker(queues=["mail", "reports"], concurrency=2, poll_interval=0.05):
        held = mail.enqueue()  # type: ignore[attr-defined]
        runs = reports.enqueue()  # type: ignore[attr-defined]
        eventually(lambda: jobs.get(runs).state is JobState.COMPLETED)
        seen = idle.count(events.WORKER_IDLE, reason="no jobs")
        idle.wait_for(events.WORKER_IDLE, reason="no jobs", more_than=seen + 5)
        assert jobs.get(held).state is JobState.AVAILABLE
        assert idle.count(events.WORKER_IDLE, reason="paused") == 0  # not every queue is

        jobs.resume_queue("mail")
        eventually(lambda: jobs.get(held).state is JobState.COMPLETED)
