"""Reading and administering jobs: lookups, listings, counts, operator retry/cancel/delete,
pruning, and the queries behind the CLI and dashboard. Part of the job store."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, bindparam, case, delete, func, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from .._secrets import erased_names
from ..exceptions import JobNotFound, SecretsErased, StoreError, UniqueKeyConflict
from ..jobs import Job, JobState
from . import _statements
from ._base import (
    _FINISHED,
    JOB_OWNED_TABLES,
    NOTIFY_CHANNEL,
    JobFilters,
    _erasing,
    _errors_with,
    _jobs,
    _operator_cancel,
    _workers,
    filtered,
    owned_rows_deletion,
    row_to_job,
)
from ._dialects import db_now
from ._job_logs import LogStore
from ._settle import Finished, reopen, settle
from ._steps import StepStore


def _conflict(job_id: int, holder: int | None, state: str | None) -> UniqueKeyConflict:
    who = f"job {holder} ({state})" if holder is not None else "a job enqueued meanwhile"
    return UniqueKeyConflict(
        f"job {job_id} was not retried: {who} holds its unique key, and two live jobs never "
        f"share one. Let that job run, or cancel it and retry {job_id}",
        job_id=job_id,
        holder=holder,
    )


class InspectionStore(StepStore, LogStore):
    """Job store queries for people and tools rather than workers."""

    def list_workers(self) -> list[dict[str, Any]]:
        def work(conn: Connection) -> list[dict[str, Any]]:
            return [
                dict(r._mapping)
                for r in conn.execute(select(_workers).order_by(_workers.c.started_at))
            ]

        return self.run(work, what="list workers", read_only=True)

    # -- inspection and administration ---------------------------------------------------

    def get(self, job_id: int) -> Job:
        def work(conn: Connection) -> Job:
            row = conn.execute(select(_jobs).where(_jobs.c.id == job_id)).first()
            if row is None:
                raise JobNotFound(f"no job with id {job_id}")
            return row_to_job(row)

        return self.run(work, what="get job", read_only=True)

    def list_jobs(
        self,
        *,
        states: Iterable[JobState | str] | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 100,
        offset: int = 0,
        ids: Iterable[int] | None = None,
    ) -> list[Job]:
        query = select(_jobs).order_by(_jobs.c.id.desc()).limit(limit).offset(offset)
        if ids is not None:
            query = query.where(_jobs.c.id.in_(list(ids)))
        if states is not None:
            query = query.where(_jobs.c.state.in_([JobState(s).value for s in states]))
        if queue is not None:
            query = query.where(_jobs.c.queue == queue)
        if task is not None:
            query = query.where(_jobs.c.task == task)
        return self.run(
            lambda conn: [row_to_job(r) for r in conn.execute(query)],
            what="list jobs",
            read_only=True,
        )

    def count_by_state(self) -> dict[tuple[str, JobState], int]:
        query = select(_jobs.c.queue, _jobs.c.state, func.count()).group_by(
            _jobs.c.queue, _jobs.c.state
        )
        return self.run(
            lambda conn: {(q, JobState(s)): int(n) for q, s, n in conn.execute(query)},
            what="count jobs",
            read_only=True,
        )

    def retry(self, job_id: int, *, unique_key: str | None = None) -> Job:
        """Make a finished or waiting job run again now (one more attempt if it used them all).

        ``unique_key``: the key the job held while it was live, given back to a job whose row
        no longer holds it (finished, or claimed with scope ``waiting``). Raises
        :class:`UniqueKeyConflict` (changing nothing) when another job holds it.
        """

        def work(conn: Connection) -> Job:
            job = self._locked(conn, job_id)
            if job.state is JobState.RUNNING:
                raise StoreError(f"job {job_id} is running; wait for it to finish")
            gone = erased_names(job.args)
            if gone:
                raise SecretsErased(
                    f"job {job_id} cannot run again: its secret argument(s) "
                    f"{', '.join(map(repr, gone))} were erased when it finished; enqueue a new "
                    "job with the secrets instead"
                )
            values: dict[str, Any] = {
                "state": JobState.AVAILABLE.value,
                "run_at": db_now(),
                "finished_at": None,
                "max_attempts": max(job.max_attempts, job.attempt + 1),
            }
            if job.graph_id is not None:
                values.update(reopen(conn, job))
            if unique_key is not None and job.unique_key is None:
                holder = conn.execute(
                    select(_jobs.c.id, _jobs.c.state)
                    .where(_jobs.c.unique_key == unique_key)
                    .where(_jobs.c.id != job_id)
                ).first()
                if holder is not None:
                    raise _conflict(job_id, int(holder.id), str(holder.state))
                values["unique_key"] = unique_key
            try:
                conn.execute(update(_jobs).where(_jobs.c.id == job_id).values(values))
            except IntegrityError:  # an enqueue took the key since the look-up
                raise _conflict(job_id, None, None) from None
            return job

        self.run(work, what="retry")
        return self.get(job_id)

    def cancel(self, job_id: int) -> Job:
        """Cancel a job. A pending job never starts; a running job can no longer commit."""

        def work(conn: Connection) -> None:
            job = self._locked(conn, job_id)
            if job.state.is_finished:
                return
            conn.execute(
                update(_jobs)
                .where(_jobs.c.id == job_id)
                .values(
                    state=JobState.CANCELLED.value,
                    finished_at=db_now(),
                    lease_owner=None,
                    lease_expires_at=None,
                    unique_key=_statements.KEY_WHEN_FINISHED,
                    errors=_errors_with(job, _operator_cancel(job)),
                    **_erasing(job),
                )
            )
            if job.graph_id is not None:
                settle(
                    conn,
                    [Finished(job.id, JobState.CANCELLED.value)],
                    notify_channel=NOTIFY_CHANNEL if self.support.listen_notify else None,
                )

        self.run(work, what="cancel")
        return self.get(job_id)

    def _locked(self, conn: Connection, job_id: int) -> Job:
        query = select(_jobs).where(_jobs.c.id == job_id)
        if self.support.skip_locked:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise JobNotFound(f"no job with id {job_id}")
        return row_to_job(row)

    def prune(
        self, *, older_than: timedelta, states: Iterable[JobState | str] | None = None
    ) -> int:
        """Delete finished jobs that finished more than ``older_than`` ago."""
        chosen = [JobState(s).value for s in states] if states is not None else _FINISHED
        unfinished = set(chosen) - set(_FINISHED)
        if unfinished:
            raise ValueError(f"only finished jobs can be pruned, not {sorted(unfinished)}")
        finished_before = db_now(literal(-older_than.total_seconds(), Float))
        finished = (_jobs.c.state.in_(chosen), _jobs.c.finished_at < finished_before)
        if self.support.index_locks_before_rows:
            ids: Any = bindparam("p_ids", expanding=True)
            by_id = delete(_jobs).where(_jobs.c.id.in_(ids))
            pick = _statements.locked_ids(*finished)
            return self._rowcount_by_locked_ids(
                pick, by_id, "prune", {}, before=owned_rows_deletion(ids)
            )

        def work(conn: Connection) -> int:
            # A job's steps and logs go with it, in the same transaction.
            pruned = select(_jobs.c.id).where(*finished).scalar_subquery()
            for statement in owned_rows_deletion(pruned):
                conn.execute(statement)
            outcome: Any = conn.execute(delete(_jobs).where(*finished))
            return int(outcome.rowcount)

        return self.run(work, what="prune")

    # -- dashboard and CLI queries ---------------------------------------------------------

    def search_jobs(
        self, filters: JobFilters, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Job], int]:
        """One page of jobs matching ``filters`` (newest first) and how many match in all."""
        page = filtered(select(_jobs), filters)
        page = page.order_by(_jobs.c.id.desc()).limit(limit).offset(offset)
        total = filtered(select(func.count()).select_from(_jobs), filters)

        def work(conn: Connection) -> tuple[list[Job], int]:
            found = [row_to_job(r) for r in conn.execute(page)]
            return found, int(conn.execute(total).scalar_one())

        return self.run(work, what="search jobs", read_only=True)

    def job_names(self) -> tuple[list[str], list[str]]:
        """The queue names and task names that appear on job rows, sorted."""

        def work(conn: Connection) -> tuple[list[str], list[str]]:
            queues = conn.execute(select(_jobs.c.queue).distinct().order_by(_jobs.c.queue))
            tasks = conn.execute(select(_jobs.c.task).distinct().order_by(_jobs.c.task))
            return list(queues.scalars()), list(tasks.scalars())

        return self.run(work, what="list job names", read_only=True)

    def oldest_available(self) -> dict[str, datetime]:
        """Per queue, the ``run_at`` of the longest-waiting available job (its backlog age)."""
        query = (
            select(_jobs.c.queue, func.min(_jobs.c.run_at))
            .where(_jobs.c.state == JobState.AVAILABLE.value)
            .group_by(_jobs.c.queue)
        )

        def work(conn: Connection) -> dict[str, datetime]:
            # min() keeps the column's type, so values come back as aware UTC datetimes.
            return {queue: oldest for queue, oldest in conn.execute(query) if oldest is not None}

        return self.run(work, what="oldest available", read_only=True)

    def throughput(
        self, *, since: datetime, bucket: timedelta, buckets: int
    ) -> list[dict[JobState, int]]:
        """Jobs that finished in each of ``buckets`` intervals of ``bucket`` from ``since``,
        by final state (completed, discarded, cancelled).

        Portable SQL: the bucket index is a ``CASE`` over the interval bounds, computed in a
        subquery (PostgreSQL refuses to group by an expression holding bind parameters).
        """
        if buckets < 1 or buckets > 1000:
            raise ValueError(f"buckets must be between 1 and 1000, got {buckets}")
        until = since + bucket * buckets
        finished_at = _jobs.c.finished_at
        bounds = [(finished_at < since + bucket * (i + 1), i) for i in range(buckets - 1)]
        # One bucket needs no CASE (and CASE without WHEN is not SQL).
        index = case(*bounds, else_=buckets - 1) if bounds else literal(0)
        rows = (
            select(index.label("bucket"), _jobs.c.state.label("state"))
            .where(_jobs.c.state.in_(_FINISHED))
            .where(finished_at >= since)
            .where(finished_at < until)
            .subquery()
        )
        query = select(rows.c.bucket, rows.c.state, func.count()).group_by(
            rows.c.bucket, rows.c.state
        )

        def work(conn: Connection) -> list[dict[JobState, int]]:
            series: list[dict[JobState, int]] = [{} for _ in range(buckets)]
            for position, state, count in conn.execute(query):
                series[int(position)][JobState(state)] = int(count)
            return series

        return self.run(work, what="throughput", read_only=True)

    def delete_all_jobs(self) -> int:
        """Delete every job row, whatever its state (for tests: see ``sqljobs.testing``), and
        every step row."""

        def work(conn: Connection) -> int:
            for table in JOB_OWNED_TABLES:
                conn.execute(delete(table))
            outcome: Any = conn.execute(delete(_jobs))
            return int(outcome.rowcount)

        return self.run(work, what="delete all jobs")

    def delete_job(self, job_id: int) -> Job:
        """Delete one job that is not running (cancel it first); return its last snapshot."""

        def work(conn: Connection) -> Job:
            job = self._locked(conn, job_id)
            if job.state is JobState.RUNNING:
                raise StoreError(f"job {job_id} is running; cancel it before deleting it")
            for statement in owned_rows_deletion([job_id]):
                conn.execute(statement)
            conn.execute(delete(_jobs).where(_jobs.c.id == job_id))
            return job

        return self.run(work, what="delete job")
