"""The durable steps' statements (``ctx.step``): load, start, complete and fail a job's steps.

Every write is conditional on the lease: it first locks the job's row *as owned by this
attempt* (``SELECT ... FOR UPDATE`` on the primary key; SQLite's single writer serializes
it anyway), so an attempt whose job was rescued, cancelled or finished meanwhile can record
nothing. A step's completion runs in the step's own transaction (:meth:`StepStore.finish_step`
given the step's session): its writes, its result and that lease check commit together. Part
of the job store.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..jobs import Job, JobError
from ..schema import steps_table
from ..steps import JobStep, StepState
from ._base import StoreBase, _jobs, _owned_by
from ._dialects import db_now

_steps = steps_table


def row_to_step(row: Any) -> JobStep:
    data = row._mapping
    error = data["error"]
    return JobStep(
        name=data["name"],
        position=int(data["position"]),
        state=StepState(data["state"]),
        attempts=int(data["attempts"]),
        result=data["result"],
        error=JobError.from_json(error) if isinstance(error, dict) else None,
        started_at=data["started_at"],
        finished_at=data["finished_at"],
        duration=data["duration"],
    )


def _of(job: Job) -> Any:
    """The step rows of ``job`` itself (not of an earlier job that had the same id)."""
    return (_steps.c.job_id == job.id) & (_steps.c.job_created_at == job.created_at)


def _step(job: Job, name: str) -> Any:
    return _of(job) & (_steps.c.name == name)


def _holds_lease(target: Session | Connection, job: Job) -> bool:
    """Lock ``job``'s row if this attempt still owns it; False if it does not."""
    query = select(_jobs.c.id).where(_owned_by(job)).with_for_update()
    return target.execute(query).first() is not None


class StepStore(StoreBase):
    """Reads and writes ``sqljobs_steps``."""

    steps_table = _steps

    def load_steps(self, job: Job) -> list[JobStep]:
        """The stored steps of ``job``, by position."""

        def work(conn: Connection) -> list[JobStep]:
            query = select(_steps).where(_of(job)).order_by(_steps.c.position, _steps.c.name)
            return [row_to_step(row) for row in conn.execute(query)]

        return self.run(work, what="load steps", read_only=True)

    def steps_of(self, job_id: int) -> list[JobStep]:
        """The steps of job ``job_id`` (none if it has none or does not exist), by position."""

        def work(conn: Connection) -> list[JobStep]:
            query = (
                select(_steps)
                .join(
                    _jobs,
                    (_jobs.c.id == _steps.c.job_id)
                    & (_jobs.c.created_at == _steps.c.job_created_at),
                )
                .where(_steps.c.job_id == job_id)
                .order_by(_steps.c.position, _steps.c.name)
            )
            return [row_to_step(row) for row in conn.execute(query)]

        return self.run(work, what="list steps", read_only=True)

    def start_step(self, job: Job, name: str, position: int) -> bool:
        """Record that step ``name`` starts (one more attempt), at ``position``; False if this
        attempt no longer holds the job's lease (then the step must not run)."""

        def work(conn: Connection) -> bool:
            if not _holds_lease(conn, job):
                return False
            current = conn.execute(
                select(_steps.c.state, _steps.c.job_created_at).where(
                    (_steps.c.job_id == job.id) & (_steps.c.name == name)
                )
            ).first()
            if current is not None and current.job_created_at != job.created_at:
                # Left by an earlier job with this id (SQLite reuses the highest id).
                conn.execute(
                    delete(_steps).where((_steps.c.job_id == job.id) & (_steps.c.name == name))
                )
                current = None
            if current is None:
                conn.execute(
                    _steps.insert().values(
                        job_id=job.id,
                        name=name,
                        job_created_at=job.created_at,
                        position=position,
                        state=StepState.RUNNING.value,
                        attempts=1,
                        started_at=db_now(),
                    )
                )
            elif current.state != StepState.COMPLETED.value:
                conn.execute(
                    update(_steps)
                    .where(_step(job, name))
                    .values(
                        position=position,
                        state=StepState.RUNNING.value,
                        attempts=_steps.c.attempts + 1,
                        started_at=db_now(),
                        finished_at=None,
                        duration=None,
                    )
                )
            return True

        return self.run(work, what="start step")

    def finish_step(
        self, target: Session | Connection, job: Job, name: str, result: Any, duration: float
    ) -> bool:
        """Mark step ``name`` completed with ``result`` inside the caller's transaction (the
        step's session): False, writing nothing, if this attempt lost the job's lease."""
        if not _holds_lease(target, job):
            return False
        target.execute(
            update(_steps)
            .where(_step(job, name))
            .values(
                state=StepState.COMPLETED.value,
                result=result,
                finished_at=db_now(),
                duration=duration,
            )
        )
        return True

    def finish_step_alone(self, job: Job, name: str, result: Any, duration: float) -> bool:
        """:meth:`finish_step` in a transaction of its own (a step without a session)."""
        return self.run(
            lambda conn: self.finish_step(conn, job, name, result, duration),
            what="complete step",
        )

    def fail_step(self, job: Job, name: str, error: JobError, duration: float) -> bool:
        """Record that step ``name`` raised ``error``; never over a completed step (a step
        whose commit's answer was lost may have completed). False if the lease was lost."""

        def work(conn: Connection) -> bool:
            if not _holds_lease(conn, job):
                return False
            conn.execute(
                update(_steps)
                .where(_step(job, name) & (_steps.c.state != StepState.COMPLETED.value))
                .values(
                    state=StepState.FAILED.value,
                    error=error.to_json(),
                    finished_at=db_now(),
                    duration=duration,
                )
            )
            return True

        return self.run(work, what="fail step")
