"""Typed response models of the REST API (they appear in the app's OpenAPI schema)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from .._overview import Overview, Throughput
from .._secrets import redacted
from ..job_logs import JobLogLine
from ..jobs import Job, JobError, JobState
from ..steps import JobStep, StepState


class JobErrorOut(BaseModel):
    """One failed attempt."""

    attempt: int
    at: datetime
    type: str
    message: str
    traceback: str

    @classmethod
    def of(cls, error: JobError) -> JobErrorOut:
        return cls(
            attempt=error.attempt,
            at=error.at,
            type=error.type,
            message=error.message,
            traceback=error.traceback,
        )


class StepOut(BaseModel):
    """One durable step of the job (``ctx.step``), in the order the job calls them."""

    name: str
    position: int = Field(description="the step's place among the job's steps, from 0")
    state: StepState = Field(description="running, completed or failed (its retry runs it)")
    attempts: int = Field(description="times the step was started (a killed run counts)")
    duration: float | None = Field(None, description="seconds its last finished run took")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: Any = Field(None, description="the stored result of a completed step")
    error: JobErrorOut | None = Field(None, description="its last run's error, if it raised")

    @classmethod
    def of(cls, step: JobStep) -> StepOut:
        return cls(
            name=step.name,
            position=step.position,
            state=step.state,
            attempts=step.attempts,
            duration=step.duration,
            started_at=step.started_at,
            finished_at=step.finished_at,
            result=step.result,
            error=JobErrorOut.of(step.error) if step.error is not None else None,
        )


class JobLogOut(BaseModel):
    """One log line an attempt of the job emitted (``ctx.logger`` or ``logging`` in the
    task's thread), in order; docs/logs.md."""

    attempt: int
    at: datetime
    level: str = Field(description="INFO, WARNING, ERROR, ...")
    logger: str
    message: str

    @classmethod
    def of(cls, line: JobLogLine) -> JobLogOut:
        return cls(
            attempt=line.attempt,
            at=line.at,
            level=line.level,
            logger=line.logger,
            message=line.message,
        )


class JobSummary(BaseModel):
    """A job as listed: everything but the error history."""

    id: int
    task: str
    queue: str
    state: JobState
    priority: int
    attempt: int
    max_attempts: int
    args: Any = Field(
        description='the job\'s JSON arguments; a secret argument shows as "<secret>" '
        '("<secret erased>" once the job finished)'
    )
    run_at: datetime
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_error: str | None = Field(None, description="'Type: message' of the last failure")

    @classmethod
    def of(cls, job: Job) -> JobSummary:
        last = job.last_error
        return cls(
            id=job.id,
            task=job.task,
            queue=job.queue,
            state=job.state,
            priority=job.priority,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            args=redacted(job.args),
            run_at=job.run_at,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            last_error=f"{last.type}: {last.message}" if last else None,
        )


class JobDetail(JobSummary):
    """One job with its result, progress (when the core records it) and every failed attempt."""

    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    result: Any = None
    progress: Any = Field(None, description="fraction done (0..1) last reported by the task")
    progress_message: str | None = Field(None, description="message sent with that progress")
    errors: list[JobErrorOut] = Field(default_factory=list)
    steps: list[StepOut] = Field(default_factory=list, description="its durable steps")
    logs: list[JobLogOut] = Field(
        default_factory=list, description="the log lines of its attempts, by attempt"
    )

    @classmethod
    def of(
        cls, job: Job, steps: Sequence[JobStep] = (), logs: Sequence[JobLogLine] = ()
    ) -> JobDetail:
        return cls(
            **JobSummary.of(job).model_dump(),
            lease_owner=job.lease_owner,
            lease_expires_at=job.lease_expires_at,
            result=job.result,
            progress=getattr(job, "progress", None),
            progress_message=getattr(job, "progress_message", None),
            errors=[JobErrorOut.of(e) for e in job.errors],
            steps=[StepOut.of(step) for step in steps],
            logs=[JobLogOut.of(line) for line in logs],
        )


class JobPage(BaseModel):
    """A page of jobs, newest first, and how many match the filters in all."""

    items: list[JobSummary]
    total: int
    limit: int
    offset: int


class QueueStats(BaseModel):
    queue: str
    counts: dict[JobState, int] = Field(description="number of jobs in each state")
    total: int
    oldest_available_at: datetime | None = Field(
        None, description="run_at of the longest-waiting available job"
    )
    backlog_seconds: float | None = Field(None, description="how long that job has been waiting")
    served: bool = Field(
        True, description="false: the queue has waiting jobs and no live worker serves it"
    )
    paused: bool = Field(False, description="true: workers do not claim its jobs")


class WorkerInfo(BaseModel):
    id: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime


class Stats(BaseModel):
    """Counts per queue and state, totals, and the workers that are alive."""

    at: datetime
    queues: list[QueueStats]
    totals: dict[JobState, int]
    workers: list[WorkerInfo]

    @classmethod
    def of(cls, view: Overview) -> Stats:
        queues = []
        for q in view.queues:
            backlog = q.backlog_age(view.at)
            queues.append(
                QueueStats(
                    queue=q.queue,
                    counts=q.counts,
                    total=q.total,
                    oldest_available_at=q.oldest_available,
                    backlog_seconds=backlog.total_seconds() if backlog is not None else None,
                    served=q.served,
                    paused=q.paused,
                )
            )
        workers = [
            WorkerInfo(
                id=w["id"],
                hostname=w["hostname"],
                pid=w["pid"],
                queues=[q for q in str(w["queues"]).split(",") if q],
                concurrency=w["concurrency"],
                started_at=w["started_at"],
                heartbeat_at=w["heartbeat_at"],
            )
            for w in view.workers
        ]
        return cls(at=view.at, queues=queues, totals=view.totals, workers=workers)


class ThroughputPoint(BaseModel):
    start: datetime
    completed: int
    discarded: int
    cancelled: int


class ThroughputOut(BaseModel):
    """Jobs finished per interval, oldest interval first."""

    bucket_seconds: float
    points: list[ThroughputPoint]

    @classmethod
    def of(cls, data: Throughput) -> ThroughputOut:
        return cls(
            bucket_seconds=data.bucket.total_seconds(),
            points=[
                ThroughputPoint(
                    start=data.start + data.bucket * i,
                    completed=p.get(JobState.COMPLETED, 0),
                    discarded=p.get(JobState.DISCARDED, 0),
                    cancelled=p.get(JobState.CANCELLED, 0),
                )
                for i, p in enumerate(data.points)
            ],
        )


class Problem(BaseModel):
    """An error response."""

    detail: str
