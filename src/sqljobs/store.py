"""JobStore: the only module that issues SQL.

Every method is one short transaction of its own, except the ``*_statement`` builders and
:meth:`JobStore.enqueue`/:meth:`JobStore.complete`, which run inside a transaction the caller
owns (the request's session, or the task's session) so that a job and its effects commit or
roll back together.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Delete, Row, Update, case, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from . import _dialects, _statements
from ._utils import utcnow
from .exceptions import JobNotFound, SchemaNotReady, StoreError
from .jobs import FINISHED_STATES, Job, JobError, JobState
from .schema import jobs_table, metadata, queues_table, workers_table

log = logging.getLogger("sqljobs.store")

T = TypeVar("T")
_jobs = jobs_table
_workers = workers_table
_queues = queues_table
_FINISHED = sorted(state.value for state in FINISHED_STATES)
#: Failed attempts kept on a row; older ones are dropped so a row never grows without bound.
MAX_ERRORS_KEPT = 20
_TRANSIENT_RETRIES = 6
#: PostgreSQL channel on which enqueues announce new work to listening workers.
NOTIFY_CHANNEL = "sqljobs_jobs"


@dataclass(frozen=True, slots=True)
class NewJob:
    """A row to insert, already validated."""

    task: str
    args: dict[str, Any]
    queue: str
    priority: int
    max_attempts: int
    run_at: datetime | None = None
    #: Enqueueing a job whose key is already held returns that job instead of a new one.
    unique_key: str | None = None
    #: How long the key is held: while the job is "waiting" (not started), "active" (waiting
    #: or running), or for "all" its life (until pruned).
    unique_scope: str | None = None

    def values(self, now: datetime) -> dict[str, Any]:
        run_at = self.run_at or now
        return {
            "unique_key": self.unique_key,
            "unique_scope": self.unique_scope if self.unique_key else None,
            "task": self.task,
            "args": self.args,
            "queue": self.queue,
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "attempt": 0,
            "state": (JobState.SCHEDULED if run_at > now else JobState.AVAILABLE).value,
            "run_at": run_at,
            "created_at": now,
            "errors": [],
        }


@dataclass(frozen=True, slots=True)
class JobFilters:
    """Which jobs a listing shows (``None``: no condition); used by the dashboard and CLI."""

    states: Sequence[JobState | str] | None = None
    queue: str | None = None
    task: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def row_to_job(row: Row[Any] | Mapping[str, Any]) -> Job:
    data: Mapping[str, Any] = row._mapping if isinstance(row, Row) else row  # type: ignore[assignment]
    errors = data.get("errors") or []
    return Job(
        id=int(data["id"]),
        task=data["task"],
        queue=data["queue"],
        args=data["args"],
        state=JobState(data["state"]),
        priority=int(data["priority"]),
        attempt=int(data["attempt"]),
        max_attempts=int(data["max_attempts"]),
        run_at=data["run_at"],
        created_at=data["created_at"],
        started_at=data.get("started_at"),
        finished_at=data.get("finished_at"),
        lease_owner=data.get("lease_owner"),
        lease_expires_at=data.get("lease_expires_at"),
        result=data.get("result"),
        errors=tuple(JobError.from_json(e) for e in errors if isinstance(e, dict)),
        progress=data.get("progress"),
        progress_message=data.get("progress_message"),
        unique_key=data.get("unique_key"),
    )


def _owned_by(job: Job) -> Any:
    """The condition under which a worker may still write a job's outcome: it holds the lease."""
    return (
        (_jobs.c.id == job.id)
        & (_jobs.c.state == JobState.RUNNING.value)
        & (_jobs.c.lease_owner == job.lease_owner)
        & (_jobs.c.attempt == job.attempt)
    )


def _owner_params(job: Job) -> dict[str, Any]:
    return {"p_id": job.id, "p_owner": job.lease_owner, "p_attempt": job.attempt}


def _operator_cancel(job: Job) -> JobError:
    was = "while it was running" if job.state is JobState.RUNNING else f"while {job.state}"
    return JobError(
        attempt=job.attempt,
        at=utcnow(),
        type="Cancelled",
        message=f"cancelled by an operator {was}",
        traceback="",
    )


def _errors_with(job: Job, error: JobError) -> list[dict[str, Any]]:
    kept = [e.to_json() for e in job.errors] + [error.to_json()]
    return kept[-MAX_ERRORS_KEPT:]


class JobStore:
    """Reads and writes the sqljobs tables through one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.support = _dialects.support_for(engine)
        self._bookkeeping_engine = (
            engine.execution_options(isolation_level=self.support.bookkeeping_isolation)
            if self.support.bookkeeping_isolation
            and engine.dialect.name != "postgresql"  # already PostgreSQL's default
            else engine
        )
        self._autocommit_engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.support.autocommit_statements
            else self._bookkeeping_engine
        )
        self._insert_if_new = _statements.insert_if_new(engine.dialect.name)
        driver_error = getattr(getattr(engine.dialect, "loaded_dbapi", None), "Error", None)
        self._raw_driver_errors: tuple[type[Exception], ...] = (
            (driver_error,) if isinstance(driver_error, type) else ()
        )
        skip_locked = self.support.skip_locked
        self._claim_statements = {
            by_id: _statements.claim_returning(skip_locked=skip_locked, by_id=by_id)
            for by_id in (False, True)
        }
        self._claimable = {
            by_id: _statements.claimable(skip_locked=skip_locked, by_id=by_id)
            for by_id in (False, True)
        }

    def __repr__(self) -> str:
        return f"JobStore({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- schema --------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the sqljobs tables and indexes if they do not exist."""
        _dialects.enable_sqlite_wal(self.engine)
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except SQLAlchemyError as exc:
            raise StoreError(f"could not create the sqljobs tables: {exc}") from exc

    def drop_schema(self) -> None:
        metadata.drop_all(self.engine, checkfirst=True)

    def check_ready(self) -> None:
        """Check the server version and that the tables exist; raise a clear error if not."""
        with self.engine.connect() as conn:
            _dialects.check_server(conn)
        _dialects.enable_sqlite_wal(self.engine)
        self.run(lambda conn: conn.execute(select(_jobs.c.id).limit(1)).all())

    # -- transactions --------------------------------------------------------------------

    def run(
        self,
        work: Callable[[Connection], T],
        *,
        what: str = "job store",
        single_statement: bool = False,
    ) -> T:
        """Run ``work`` in its own short transaction, retrying deadlocks and busy errors.

        ``single_statement`` work may run in autocommit where the database makes one statement
        atomic on its own (PostgreSQL): that saves the BEGIN and COMMIT round trips.
        """
        engine = self._autocommit_engine if single_statement else self._bookkeeping_engine
        for attempt in range(1, _TRANSIENT_RETRIES + 1):
            try:
                with engine.connect() as conn:
                    _dialects.begin_write(conn)
                    result = work(conn)
                    conn.commit()
                    return result
            except DBAPIError as exc:
                if _dialects.is_transient(exc) and attempt < _TRANSIENT_RETRIES:
                    time.sleep(min(0.01 * 2**attempt, 0.5))
                    continue
                raise self.wrap(exc, what) from exc
            except SQLAlchemyError as exc:
                raise self.wrap(exc, what) from exc
            except self._raw_driver_errors as exc:
                # A driver error SQLAlchemy did not wrap: e.g. setting the isolation level of
                # a pooled connection the server killed (MariaDB KILL). The pool has
                # discarded that connection; the next attempt gets a new one.
                if attempt < _TRANSIENT_RETRIES:
                    time.sleep(min(0.01 * 2**attempt, 0.5))
                    continue
                raise StoreError(f"{what} failed: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def wrap(exc: SQLAlchemyError, what: str) -> StoreError:
        message = str(getattr(exc, "orig", exc)).lower()
        if "sqljobs_" in message and (
            "no such table" in message or "does not exist" in message or "doesn't exist" in message
        ):
            return SchemaNotReady()
        return StoreError(f"{what} failed: {exc}")

    # -- enqueue -------------------------------------------------------------------------

    def insert_statement(self) -> Any:
        return insert(_jobs)

    def enqueue(
        self, executor: Session | Connection | None, new_jobs: Sequence[NewJob]
    ) -> list[int]:
        """Insert jobs; in ``executor``'s transaction if given, else in one of its own."""
        if not new_jobs:
            return []
        now = utcnow()
        rows = [job.values(now) for job in new_jobs]

        single = len(rows) == 1 and not rows[0]["unique_key"]
        if single and self.support.listen_notify:
            # PostgreSQL: insert and notify in one statement (and, on its own, in autocommit):
            # one round trip instead of BEGIN, NOTIFY, INSERT and COMMIT.
            params = {**_statements.notify_insert_params(rows[0]), "p_channel": NOTIFY_CHANNEL}

            def insert_notify(target: Session | Connection) -> list[int]:
                return [int(target.execute(_statements.INSERT_AND_NOTIFY, params).scalar_one())]

            if executor is None:
                return self.run(insert_notify, what="enqueue", single_statement=True)
            try:
                return insert_notify(executor)
            except SQLAlchemyError as exc:
                raise self.wrap(exc, "enqueue") from exc

        def insert_rows(target: Session | Connection) -> list[int]:
            if self.support.listen_notify:
                # Delivered to listening workers when (and only if) this transaction commits.
                ready = sorted({r["queue"] for r in rows if r["state"] == JobState.AVAILABLE})
                for queue in ready:
                    target.execute(
                        _statements.NOTIFY, {"p_channel": NOTIFY_CHANNEL, "p_queue": queue}
                    )
            if any(r["unique_key"] for r in rows):
                return [self._insert_unique(target, r) for r in rows]
            if len(rows) == 1:
                result: Any = target.execute(_statements.INSERT, rows[0])
                return [int(result.inserted_primary_key[0])]
            dialect = self.engine.dialect
            if dialect.insert_executemany_returning_sort_by_parameter_order:
                statement = _statements.INSERT_RETURNING_IDS
                return [int(i) for i in target.execute(statement, rows).scalars()]
            inserted: list[Any] = [target.execute(_statements.INSERT, r) for r in rows]
            return [int(result.inserted_primary_key[0]) for result in inserted]

        if executor is None:
            return self.run(insert_rows, what="enqueue")
        try:
            return insert_rows(executor)
        except SQLAlchemyError as exc:
            raise self.wrap(exc, "enqueue") from exc

    def _insert_unique(self, target: Session | Connection, row: dict[str, Any]) -> int:
        """Insert, or return the id of the job holding ``row``'s unique key. The database's
        unique index decides, so concurrent enqueues cannot both insert."""
        if self.engine.dialect.name in ("postgresql", "sqlite"):
            inserted = target.execute(self._insert_if_new, row).first()
            if inserted is not None:
                return int(inserted[0])
            existing = target.execute(_statements.ID_BY_UNIQUE_KEY, {"p_key": row["unique_key"]})
            return int(existing.scalar_one())
        target.execute(self._insert_if_new, row)  # MySQL: LAST_INSERT_ID names either row
        return int(target.execute(_statements.LAST_INSERT_ID).scalar_one())

    # -- claim ---------------------------------------------------------------------------

    def stage(self, *, until: datetime | None = None) -> int:
        """Make scheduled and retryable jobs whose time has come ``available`` to claim."""
        return self._rowcount(
            _statements.STAGE, "stage", {"p_until": until or utcnow()}, single_statement=True
        )

    def claim(
        self,
        *,
        worker_id: str,
        queues: Sequence[str],
        limit: int,
        lease: timedelta,
        ids: Sequence[int] | None = None,
    ) -> list[Job]:
        """Take up to ``limit`` available jobs for ``worker_id`` (see :meth:`stage`).

        No two workers ever get the same job: PostgreSQL and MariaDB skip rows another
        claimer has locked; SQLite claims under its single write lock.
        """
        if limit <= 0 or not queues:
            return []

        params = self._claim_params(worker_id, queues, limit)
        if ids is not None:
            params["p_only"] = list(ids)

        def work(conn: Connection) -> list[Job]:
            return self._claim_in(conn, params, lease)

        return self.run(work, what="claim", single_statement=self.support.update_returning)

    def _claim_in(self, conn: Connection, params: dict[str, Any], lease: timedelta) -> list[Job]:
        now = utcnow()
        params.update(p_now=now, p_until=now + lease)
        by_id = "p_only" in params
        if self.support.update_returning:
            claimed = [row_to_job(r) for r in conn.execute(self._claim_statements[by_id], params)]
        else:
            chosen = list(conn.execute(self._claimable[by_id], params).scalars())
            if not chosen:
                return []
            params["p_chosen"] = chosen
            conn.execute(_statements.CLAIM_SELECTED, params)
            claimed = [row_to_job(r) for r in conn.execute(_statements.SELECT_BY_IDS, params)]
        claimed.sort(key=lambda j: (j.priority, j.run_at, j.id))
        return claimed

    def claim_limited(
        self, *, worker_id: str, queue: str, limit: int, lease: timedelta
    ) -> list[Job]:
        """Claim from a queue with a global concurrency limit and/or a rate limit.

        The queue's settings row is locked for the claim, so claimers in every process see
        each other's counts: never more than ``global_limit`` jobs of the queue run at once,
        never more than ``rate_limit`` start per ``rate_period``.
        """

        def work(conn: Connection) -> list[Job]:
            settings = conn.execute(_statements.LOCK_QUEUE, {"p_queue": queue}).first()
            if settings is None:
                return self._claim_in(conn, self._claim_params(worker_id, [queue], limit), lease)
            allowance = limit
            now = utcnow()
            if settings.global_limit is not None:
                running = conn.execute(_statements.COUNT_RUNNING, {"p_queue": queue}).scalar_one()
                allowance = min(allowance, settings.global_limit - int(running))
            window_start, window_count = settings.window_start, settings.window_count or 0
            if settings.rate_limit is not None and settings.rate_period:
                period = timedelta(seconds=settings.rate_period)
                if window_start is None or now - window_start >= period:
                    window_start, window_count = now, 0
                allowance = min(allowance, settings.rate_limit - window_count)
            if allowance <= 0:
                return []
            claimed = self._claim_in(conn, self._claim_params(worker_id, [queue], allowance), lease)
            if settings.rate_limit is not None and claimed:
                conn.execute(
                    _statements.COUNT_STARTS,
                    {
                        "p_queue": queue,
                        "p_start": window_start,
                        "p_count": window_count + len(claimed),
                    },
                )
            return claimed

        return self.run(work, what="claim")

    @staticmethod
    def _claim_params(worker_id: str, queues: Sequence[str], limit: int) -> dict[str, Any]:
        return {"p_queues": list(queues), "p_limit": limit, "p_owner": worker_id}

    def configure_queue(
        self,
        name: str,
        *,
        global_limit: int | None,
        rate_limit: int | None,
        rate_period: timedelta | None,
    ) -> None:
        """Store a queue's limits for every worker (None removes a limit)."""
        values = {
            "global_limit": global_limit,
            "rate_limit": rate_limit,
            "rate_period": rate_period.total_seconds() if rate_period else None,
        }

        def work(conn: Connection) -> None:
            changed: Any = conn.execute(
                update(_queues).where(_queues.c.name == name).values(values)
            )
            if changed.rowcount == 0:
                conn.execute(insert(_queues).values(name=name, window_count=0, **values))

        self.run(work, what="configure queue")

    def queue_settings(self) -> dict[str, dict[str, Any]]:
        """Limits of every configured queue, by name."""

        def work(conn: Connection) -> dict[str, dict[str, Any]]:
            rows = conn.execute(select(_queues))
            return {row.name: dict(row._mapping) for row in rows}

        return self.run(work, what="queue settings")

    # -- outcomes ------------------------------------------------------------------------

    def complete(self, executor: Session | Connection, job: Job, result: Any) -> bool:
        """Mark ``job`` completed inside the caller's transaction. False: the lease was lost."""
        params = {**_owner_params(job), "p_now": utcnow(), "p_result": result}
        outcome: Any = executor.execute(_statements.COMPLETE, params)
        return bool(outcome.rowcount == 1)

    def complete_many(self, done: Sequence[tuple[Job, Any]]) -> set[int]:
        """Complete jobs whose task had no session, in one transaction; returns those stored."""

        def work(conn: Connection) -> set[int]:
            if len(done) > 1 and self.engine.dialect.supports_sane_multi_rowcount:
                params = [
                    {**_owner_params(job), "p_now": now, "p_result": result} for job, result in done
                ]
                outcome: Any = conn.execute(_statements.COMPLETE, params)
                if outcome.rowcount == len(done):
                    return {job.id for job, _ in done}
                conn.rollback()  # some lease was lost: find out which, one by one
                _dialects.begin_write(conn)
            return {job.id for job, result in done if self.complete(conn, job, result)}

        now = utcnow()
        return self.run(work, what="complete", single_statement=len(done) == 1)

    def _set_outcome(self, job: Job, values: dict[str, Any], what: str) -> bool:
        def work(conn: Connection) -> bool:
            outcome: Any = conn.execute(update(_jobs).where(_owned_by(job)).values(values))
            return bool(outcome.rowcount == 1)

        return self.run(work, what=what)

    def fail(self, job: Job, error: JobError, *, retry_at: datetime | None) -> bool:
        """Record a failed attempt; schedule a retry at ``retry_at`` or discard the job."""
        values: dict[str, Any] = {
            "errors": _errors_with(job, error),
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if retry_at is None:
            values.update(
                state=JobState.DISCARDED.value,
                finished_at=error.at,
                unique_key=_statements.KEY_WHEN_FINISHED,
            )
        else:
            values.update(state=JobState.RETRYABLE.value, run_at=retry_at)
        return self._set_outcome(job, values, "fail")

    def snooze(self, job: Job, run_at: datetime) -> bool:
        """Put the job back for ``run_at`` without counting the attempt."""
        values = {
            "state": JobState.SCHEDULED.value,
            "attempt": _jobs.c.attempt - 1,
            "run_at": run_at,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        return self._set_outcome(job, values, "snooze")

    def cancel_running(self, job: Job, error: JobError) -> bool:
        values = {
            "state": JobState.CANCELLED.value,
            "finished_at": error.at,
            "errors": _errors_with(job, error),
            "lease_owner": None,
            "lease_expires_at": None,
            "unique_key": _statements.KEY_WHEN_FINISHED,
        }
        return self._set_outcome(job, values, "cancel")

    def release(self, jobs: Iterable[Job]) -> int:
        """Give running jobs back to the queue at shutdown; the attempt is not counted."""
        owned = list(jobs)

        def work(conn: Connection) -> int:
            released = 0
            for job in owned:
                outcome: Any = conn.execute(
                    update(_jobs)
                    .where(_owned_by(job))
                    .values(
                        state=JobState.AVAILABLE.value,
                        attempt=_jobs.c.attempt - 1,
                        run_at=utcnow(),
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                )
                released += outcome.rowcount
            return released

        return self.run(work, what="release") if owned else 0

    # -- leases --------------------------------------------------------------------------

    def heartbeat(
        self,
        *,
        worker_id: str,
        job_ids: Sequence[int],
        lease: timedelta,
        check_ids: Sequence[int] = (),
        progress: Sequence[tuple[int, float, str]] = (),
    ) -> set[int]:
        """Extend the leases of ``job_ids``, store reported ``progress`` (job id, fraction,
        message), mark the worker alive, and return which of ``check_ids`` the worker no
        longer holds (cancelled by an operator, or rescued after a lost lease)."""

        def work(conn: Connection) -> set[int]:
            now = utcnow()
            params = {"p_owner": worker_id, "p_now": now, "p_until": now + lease}
            if job_ids:
                conn.execute(_statements.RENEW_LEASES, {**params, "p_ids": list(job_ids)})
            if progress:
                conn.execute(
                    _statements.SAVE_PROGRESS,
                    [
                        {
                            "p_id": job_id,
                            "p_owner": worker_id,
                            "p_progress": fraction,
                            "p_message": message,
                        }
                        for job_id, fraction, message in progress
                    ],
                )
            conn.execute(_statements.WORKER_ALIVE, params)
            if not check_ids:
                return set()
            held = conn.execute(_statements.HELD, {**params, "p_ids": list(check_ids)})
            return set(check_ids) - set(held.scalars())

        return self.run(work, what="heartbeat")

    def save_progress(self, job_id: int, fraction: float, message: str) -> None:
        """Store a job's last progress whatever its state (after ``drain()`` ran it)."""
        statement = (
            update(_jobs)
            .where(_jobs.c.id == job_id)
            .values(progress=fraction, progress_message=message)
        )
        self._rowcount(statement, "save progress")

    def rescue(self, *, limit: int = 100) -> list[int]:
        """Requeue running jobs whose lease expired (their worker died); counts the attempt."""

        def work(conn: Connection) -> list[int]:
            now = utcnow()
            query = (
                select(_jobs)
                .where(_jobs.c.state == JobState.RUNNING.value)
                .where(_jobs.c.lease_expires_at < now)
                .order_by(_jobs.c.lease_expires_at)
                .limit(limit)
            )
            if self.support.skip_locked:
                query = query.with_for_update(skip_locked=True)
            rescued = []
            for job in (row_to_job(r) for r in conn.execute(query)):
                error = JobError(
                    attempt=job.attempt,
                    at=now,
                    type="LeaseExpired",
                    message=f"worker {job.lease_owner} stopped renewing its lease (it died or "
                    "hung); the job was rescued",
                    traceback="",
                )
                final = job.attempt >= job.max_attempts
                values: dict[str, Any] = {
                    "state": (JobState.DISCARDED if final else JobState.RETRYABLE).value,
                    "errors": _errors_with(job, error),
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "run_at": now,
                }
                if final:
                    values["finished_at"] = now
                    values["unique_key"] = _statements.KEY_WHEN_FINISHED
                conn.execute(update(_jobs).where(_owned_by(job)).values(values))
                rescued.append(job.id)
            return rescued

        return self.run(work, what="rescue")

    # -- workers -------------------------------------------------------------------------

    def register_worker(
        self, *, worker_id: str, hostname: str, pid: int, queues: Sequence[str], concurrency: int
    ) -> None:
        def work(conn: Connection) -> None:
            now = utcnow()
            conn.execute(
                insert(_workers).values(
                    id=worker_id,
                    hostname=hostname,
                    pid=pid,
                    queues=",".join(queues),
                    concurrency=concurrency,
                    started_at=now,
                    heartbeat_at=now,
                )
            )

        self.run(work, what="register worker")

    def unregister_worker(self, worker_id: str) -> None:
        self.run(
            lambda conn: conn.execute(delete(_workers).where(_workers.c.id == worker_id)),
            what="unregister worker",
        )

    def prune_workers(self, *, silent_for: timedelta) -> int:
        statement = delete(_workers).where(_workers.c.heartbeat_at < utcnow() - silent_for)
        return self._rowcount(statement, "prune workers")

    def list_workers(self) -> list[dict[str, Any]]:
        def work(conn: Connection) -> list[dict[str, Any]]:
            return [
                dict(r._mapping)
                for r in conn.execute(select(_workers).order_by(_workers.c.started_at))
            ]

        return self.run(work, what="list workers")

    # -- inspection and administration ---------------------------------------------------

    def get(self, job_id: int) -> Job:
        def work(conn: Connection) -> Job:
            row = conn.execute(select(_jobs).where(_jobs.c.id == job_id)).first()
            if row is None:
                raise JobNotFound(f"no job with id {job_id}")
            return row_to_job(row)

        return self.run(work, what="get job")

    def list_jobs(
        self,
        *,
        states: Iterable[JobState | str] | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        query = select(_jobs).order_by(_jobs.c.id.desc()).limit(limit).offset(offset)
        if states is not None:
            query = query.where(_jobs.c.state.in_([JobState(s).value for s in states]))
        if queue is not None:
            query = query.where(_jobs.c.queue == queue)
        if task is not None:
            query = query.where(_jobs.c.task == task)
        return self.run(lambda conn: [row_to_job(r) for r in conn.execute(query)], what="list jobs")

    def count_by_state(self) -> dict[tuple[str, JobState], int]:
        query = select(_jobs.c.queue, _jobs.c.state, func.count()).group_by(
            _jobs.c.queue, _jobs.c.state
        )
        return self.run(
            lambda conn: {(q, JobState(s)): int(n) for q, s, n in conn.execute(query)},
            what="count jobs",
        )

    def retry(self, job_id: int) -> Job:
        """Make a finished or waiting job run again now (one more attempt if it used them all)."""

        def work(conn: Connection) -> Job:
            job = self._locked(conn, job_id)
            if job.state is JobState.RUNNING:
                raise StoreError(f"job {job_id} is running; wait for it to finish")
            conn.execute(
                update(_jobs)
                .where(_jobs.c.id == job_id)
                .values(
                    state=JobState.AVAILABLE.value,
                    run_at=utcnow(),
                    finished_at=None,
                    max_attempts=max(job.max_attempts, job.attempt + 1),
                )
            )
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
                    finished_at=utcnow(),
                    lease_owner=None,
                    lease_expires_at=None,
                    unique_key=_statements.KEY_WHEN_FINISHED,
                    errors=_errors_with(job, _operator_cancel(job)),
                )
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
        statement = (
            delete(_jobs)
            .where(_jobs.c.state.in_(chosen))
            .where(_jobs.c.finished_at < utcnow() - older_than)
        )
        return self._rowcount(statement, "prune")

    def _rowcount(
        self,
        statement: Delete | Update,
        what: str,
        params: dict[str, Any] | None = None,
        *,
        single_statement: bool = False,
    ) -> int:
        def work(conn: Connection) -> int:
            outcome: Any = conn.execute(statement, params)
            return int(outcome.rowcount)

        return self.run(work, what=what, single_statement=single_statement)

    # -- dashboard and CLI queries ---------------------------------------------------------

    def _where_filters(self, query: Any, filters: JobFilters) -> Any:
        if filters.states is not None:
            query = query.where(_jobs.c.state.in_([JobState(s).value for s in filters.states]))
        if filters.queue is not None:
            query = query.where(_jobs.c.queue == filters.queue)
        if filters.task is not None:
            query = query.where(_jobs.c.task == filters.task)
        if filters.created_after is not None:
            query = query.where(_jobs.c.created_at >= filters.created_after)
        if filters.created_before is not None:
            query = query.where(_jobs.c.created_at < filters.created_before)
        return query

    def search_jobs(
        self, filters: JobFilters, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Job], int]:
        """One page of jobs matching ``filters`` (newest first) and how many match in all."""
        page = self._where_filters(select(_jobs), filters)
        page = page.order_by(_jobs.c.id.desc()).limit(limit).offset(offset)
        total = self._where_filters(select(func.count()).select_from(_jobs), filters)

        def work(conn: Connection) -> tuple[list[Job], int]:
            found = [row_to_job(r) for r in conn.execute(page)]
            return found, int(conn.execute(total).scalar_one())

        return self.run(work, what="search jobs")

    def job_names(self) -> tuple[list[str], list[str]]:
        """The queue names and task names that appear on job rows, sorted."""

        def work(conn: Connection) -> tuple[list[str], list[str]]:
            queues = conn.execute(select(_jobs.c.queue).distinct().order_by(_jobs.c.queue))
            tasks = conn.execute(select(_jobs.c.task).distinct().order_by(_jobs.c.task))
            return list(queues.scalars()), list(tasks.scalars())

        return self.run(work, what="list job names")

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

        return self.run(work, what="oldest available")

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
        index = case(
            *[(finished_at < since + bucket * (i + 1), i) for i in range(buckets - 1)],
            else_=buckets - 1,
        )
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

        return self.run(work, what="throughput")

    def delete_job(self, job_id: int) -> Job:
        """Delete one job that is not running (cancel it first); return its last snapshot."""

        def work(conn: Connection) -> Job:
            job = self._locked(conn, job_id)
            if job.state is JobState.RUNNING:
                raise StoreError(f"job {job_id} is running; cancel it before deleting it")
            conn.execute(delete(_jobs).where(_jobs.c.id == job_id))
            return job

        return self.run(work, what="delete job")
