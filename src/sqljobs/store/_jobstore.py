"""JobStore: what workers and enqueuers do to jobs — enqueue, claim, outcomes, leases.

Every method is one short transaction of its own, except :meth:`JobStore.enqueue` and
:meth:`JobStore.complete` given a session: they run inside a transaction the caller owns
(the request's session, or the task's session) so that a job and its effects commit or
roll back together. Lookups and administration live in :mod:`sqljobs.store._inspection`,
transactions and row types in :mod:`sqljobs.store._base`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .._secrets import erased, has_secrets
from .._utils import utcnow
from ..jobs import Job, JobError, JobState, NewJob
from . import _dialects, _flow_statements, _statements
from ._base import (
    NOTIFY_CHANNEL,
    _erasing,
    _errors_with,
    _jobs,
    _owned_by,
    _owner_params,
    row_to_job,
)
from ._bound import engine_of
from ._bulk import BulkStore
from ._flow import FlowStore
from ._graphs import GraphStore
from ._precompiled import Precompiled
from ._settle import Finished


def _as_claimed(job: Job, params: dict[str, Any]) -> Job:
    """The snapshot of ``job`` after CLAIM_SELECTED ran with ``params``."""
    # "waiting" and "debounce" keys are released by the claim (see KEY_WHILE_ACTIVE).
    waiting_only = job.unique_key is not None and job.unique_scope not in ("active", "all")
    return replace(
        job,
        state=JobState.RUNNING,
        attempt=job.attempt + 1,
        # The database's clock wrote it; this only says that it is set.
        started_at=utcnow() if params["p_started"] else None,
        lease_owner=params["p_owner"],
        lease_expires_at=params["p_until"],
        unique_key=None if waiting_only else job.unique_key,
    )


def _completion(job: Job, result: Any) -> tuple[Precompiled, dict[str, Any]]:
    params = {**_owner_params(job), "p_result": result}
    if not has_secrets(job.args):
        return _statements.PRECOMPILED_COMPLETE, params
    return _statements.PRECOMPILED_COMPLETE_ERASING, {**params, "p_args": erased(job.args)}


def _on_database_clock(at: datetime) -> Any:
    """``at``, a time this process computed as "now plus a delay" (a retry's backoff, a
    snooze), as the same delay from the database's now: the delay is measured here, but when
    it ends is decided on the one clock every worker shares."""
    delay = (at - utcnow()).total_seconds()
    return _dialects.db_now(literal(delay, Float))


def _reserve(rows: list[dict[str, Any]], owner: str, lease: timedelta, *, now: datetime) -> None:
    """Turn the due rows among ``rows`` into jobs claimed by ``owner`` (see ``enqueue``)."""
    for row in rows:
        due = row["state"] == JobState.AVAILABLE
        row.update(
            state=JobState.RUNNING.value if due else row["state"],
            attempt=1 if due else 0,
            lease_owner=owner if due else None,
            lease_expires_at=now + lease if due else None,
        )


class JobStore(FlowStore, GraphStore, BulkStore):
    """Reads and writes the sqljobs tables through one SQLAlchemy engine: the job's life
    (enqueue, claim, outcomes) here, claims with limits in :class:`FlowStore`, leases and
    workers in :class:`LeaseStore`, lookups and
    administration in :class:`~sqljobs.store._inspection.InspectionStore`."""

    # -- enqueue -------------------------------------------------------------------------

    def enqueue(
        self,
        executor: Session | Connection | None,
        new_jobs: Sequence[NewJob],
        *,
        reserve_for: tuple[str, timedelta] | None = None,
    ) -> list[int]:
        """Insert jobs; in ``executor``'s transaction if given, else in one of its own.

        ``reserve_for=(owner, lease)`` inserts the jobs that are due already claimed by
        ``owner`` (running, not started), so that no worker can take them before ``owner``
        runs them (inline mode: see :meth:`take_reserved`).
        """
        if not new_jobs:
            return []
        now = utcnow()
        rows = [job.values(now) for job in new_jobs]
        if reserve_for is not None:
            _reserve(rows, *reserve_for, now=now)

        single = len(rows) == 1 and not rows[0]["unique_key"]  # (debounced rows have one)
        if single and self.support.listen_notify:
            # PostgreSQL: insert and notify in one statement (and, on its own, in autocommit):
            # one round trip instead of BEGIN, NOTIFY, INSERT and COMMIT.
            params = {**_statements.notify_insert_params(rows[0]), "p_channel": NOTIFY_CHANNEL}

            def insert_notify(target: Session | Connection) -> list[int]:
                inserted = _statements.PRECOMPILED_INSERT_AND_NOTIFY.execute(target, params)
                return [int(inserted.scalar_one())]

            if executor is None:
                return self.run(
                    insert_notify, what="enqueue", single_statement=True, repeatable=False
                )
            try:
                return insert_notify(executor)
            except SQLAlchemyError as exc:
                raise self.wrap(exc, "enqueue", engine_of(executor)) from exc

        def insert_rows(target: Session | Connection) -> list[int]:
            if self.support.listen_notify:
                # Delivered to listening workers when (and only if) this transaction commits.
                ready = sorted({r["queue"] for r in rows if r["state"] == JobState.AVAILABLE})
                for queue in ready:
                    target.execute(
                        _statements.NOTIFY, {"p_channel": NOTIFY_CHANNEL, "p_queue": queue}
                    )
            if any(r["unique_key"] for r in rows):
                return [
                    self._insert_unique(target, r, job.debounce_window)
                    for r, job in zip(rows, new_jobs, strict=True)
                ]
            # ARRAY_INSERT has no flow or trace columns
            plain = all(r["flow_key"] is None and r["trace_context"] is None for r in rows)
            if len(rows) > 1 and self.support.array_insert and reserve_for is None and plain:
                return self._insert_arrays(target, rows, now)
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
            # Inserting again after a lost answer could store the jobs twice, unless each row
            # has a unique key: then the second insert finds the first.
            repeatable = all(r["unique_key"] for r in rows)
            return self.run(insert_rows, what="enqueue", repeatable=repeatable)
        try:
            return insert_rows(executor)
        except SQLAlchemyError as exc:
            raise self.wrap(exc, "enqueue", engine_of(executor)) from exc

    def _insert_arrays(
        self, target: Session | Connection, rows: list[dict[str, Any]], now: datetime
    ) -> list[int]:
        dump_json = getattr(self.engine.dialect, "_json_serializer", None) or json.dumps
        ids: list[int] = []
        step = _statements.ARRAY_INSERT_CHUNK
        for start in range(0, len(rows), step):
            params = _statements.array_insert_params(rows[start : start + step], now, dump_json)
            inserted = target.execute(_statements.ARRAY_INSERT, params).scalars()
            ids += sorted(int(job_id) for job_id in inserted)
        return ids

    def _insert_unique(
        self, target: Session | Connection, row: dict[str, Any], debounce: float | None = None
    ) -> int:
        """Insert, or return the id of the job holding ``row``'s unique key. The database's
        unique index decides, so concurrent enqueues cannot both insert. A debounced row
        (``debounce`` seconds) rewrites the pending job holding its key instead."""
        name = self.engine.dialect.name
        statement = (
            self._insert_if_new
            if debounce is None
            else _flow_statements.debounced_insert(name, row, debounce)
        )
        if name in ("postgresql", "sqlite"):
            inserted = target.execute(statement, row if debounce is None else {}).first()
            if inserted is not None:
                return int(inserted[0])
            existing = target.execute(_statements.ID_BY_UNIQUE_KEY, {"p_key": row["unique_key"]})
            return int(existing.scalar_one())
        # MySQL: LAST_INSERT_ID names either row
        target.execute(statement, row if debounce is None else {})
        return int(target.execute(_statements.LAST_INSERT_ID).scalar_one())

    def take_reserved(self, ids: Sequence[int], *, owner: str, lease: timedelta) -> list[Job]:
        """The jobs among ``ids`` that :meth:`enqueue` reserved for ``owner`` and that it still
        holds, claimed as a worker's claim would (lease renewed, a ``waiting`` unique key
        released), in claim order."""
        if not ids:
            return []
        reserved = (
            (_jobs.c.id.in_(list(ids)))
            & (_jobs.c.state == JobState.RUNNING.value)
            & (_jobs.c.lease_owner == owner)
            & (_jobs.c.started_at.is_(None))
        )

        def work(conn: Connection) -> list[Job]:
            values = {
                "lease_expires_at": utcnow() + lease,
                "unique_key": _statements.KEY_WHILE_ACTIVE,
            }
            conn.execute(update(_jobs).where(reserved).values(values))
            return [row_to_job(r) for r in conn.execute(select(_jobs).where(reserved))]

        taken = self.run(work, what="take reserved jobs")
        return sorted(taken, key=lambda j: (j.priority, j.run_at, j.id))

    # -- claim ---------------------------------------------------------------------------

    def stage(self, *, until: datetime | None = None) -> int:
        """Make scheduled and retryable jobs whose time has come ``available`` to claim: by
        the database's clock, or by ``until`` (``drain()`` runs scheduled jobs early)."""
        params: dict[str, Any] = {} if until is None else {"p_until": until}
        if not self.support.index_locks_before_rows:
            stage = _statements.STAGE if until is None else _statements.STAGE_UNTIL
            return self._rowcount(stage, "stage", params, single_statement=True)
        due = _statements.STAGE_DUE_IDS if until is None else _statements.STAGE_UNTIL_IDS
        return self._rowcount_by_locked_ids(due, _statements.STAGE_IDS, "stage", params)

    def claim(
        self,
        *,
        worker_id: str,
        queues: Sequence[str],
        limit: int,
        lease: timedelta,
        ids: Sequence[int] | None = None,
        tasks: Sequence[str] | None = None,
        start: bool = False,
    ) -> list[Job]:
        """Take up to ``limit`` available jobs for ``worker_id`` (see :meth:`stage`); with
        ``tasks``, only jobs of those tasks (a worker claims only what it can run). ``start``:
        the claimed jobs' attempts start now (each goes to an idle executor at once), so the
        claim records their start too; such a claim is not repeated when its answer is lost
        (:class:`OutcomeUnknown`), since its jobs would then count an attempt that never ran:
        the worker gives them back (:meth:`give_back_unheld`).

        No two workers ever get the same job: PostgreSQL and MariaDB skip rows another
        claimer has locked; SQLite claims under its single write lock.
        """
        if limit <= 0 or not queues or (tasks is not None and not tasks):
            return []

        params = self._claim_params(worker_id, queues, limit, tasks)
        params["p_started"] = start
        if ids is not None:
            params["p_only"] = list(ids)

        def work(conn: Connection) -> list[Job]:
            return self._claim_in(conn, params, lease)

        return self.run(
            work,
            what="claim",
            single_statement=self.support.update_returning,
            repeatable=not start,
        )

    def _claim_in(self, conn: Connection, params: dict[str, Any], lease: timedelta) -> list[Job]:
        params["p_lease"] = lease.total_seconds()
        variant = ("p_only" in params, "p_tasks" in params)
        if self.support.update_returning:
            claimed = [row_to_job(r) for r in conn.execute(self._claim_statements[variant], params)]
        else:  # MySQL: lock the rows, mark them, and derive what the UPDATE made of them
            found = list(conn.execute(self._claimable[variant], params))
            if not found:
                return []
            rows = [row_to_job(r) for r in found]
            # The lease's end as the database's clock had it when it locked the rows.
            params["p_until"] = found[0]._mapping[_statements.LEASE_END_COLUMN]
            params["p_chosen"] = [job.id for job in rows]
            conn.execute(_statements.CLAIM_SELECTED, params)
            claimed = [_as_claimed(job, params) for job in rows]
        claimed.sort(key=lambda j: (j.priority, j.run_at, j.id))
        return claimed

    # -- outcomes ------------------------------------------------------------------------

    def complete(self, executor: Session | Connection, job: Job, result: Any) -> bool:
        """Mark ``job`` completed inside the caller's transaction. False: the lease was lost."""
        completion, params = _completion(job, result)
        stored = completion.execute(executor, params).rowcount == 1
        if stored and job.graph_id is not None:
            self.settle(executor, [Finished(job.id, JobState.COMPLETED.value, result)])
        return stored

    def complete_many(self, done: Sequence[tuple[Job, Any]]) -> set[int]:
        """Complete jobs whose task had no session, in one transaction; returns those stored.
        Jobs holding secrets have them erased by their completion's statement."""

        def work(conn: Connection) -> set[int]:
            if len(done) > 1 and self.engine.dialect.supports_sane_multi_rowcount:
                batches: dict[Any, list[dict[str, Any]]] = {}
                for job, result in done:
                    completion, params = _completion(job, result)
                    batches.setdefault(completion.statement, []).append(params)
                stored = 0
                for statement, batch in batches.items():
                    outcome: Any = conn.execute(statement, batch)
                    stored += outcome.rowcount
                if stored == len(done):
                    in_graphs = [
                        Finished(job.id, JobState.COMPLETED.value, result)
                        for job, result in done
                        if job.graph_id is not None
                    ]
                    if in_graphs:
                        self.settle(conn, in_graphs)
                    return {job.id for job, _ in done}
                conn.rollback()  # some lease was lost: find out which, one by one
                _dialects.begin_write(conn)
            return {job.id for job, result in done if self.complete(conn, job, result)}

        return self.run(work, what="complete", single_statement=len(done) == 1)

    def _set_outcome(self, job: Job, values: dict[str, Any], what: str) -> bool:
        finished = values.get("state") in (JobState.DISCARDED.value, JobState.CANCELLED.value)

        def work(conn: Connection) -> bool:
            outcome: Any = conn.execute(update(_jobs).where(_owned_by(job)).values(values))
            stored = bool(outcome.rowcount == 1)
            if stored and finished and job.graph_id is not None:
                self.settle(conn, [Finished(job.id, str(values["state"]))])
            return stored

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
                finished_at=_dialects.db_now(),
                unique_key=_statements.KEY_WHEN_FINISHED,
                **_erasing(job),
            )
        else:
            values.update(state=JobState.RETRYABLE.value, run_at=_on_database_clock(retry_at))
        return self._set_outcome(job, values, "fail")

    def snooze(self, job: Job, run_at: datetime, *, note: JobError | None = None) -> bool:
        """Put the job back for ``run_at`` without counting the attempt (recording ``note``
        with its errors)."""
        values: dict[str, Any] = {
            "state": JobState.SCHEDULED.value,
            "attempt": _jobs.c.attempt - 1,
            "run_at": _on_database_clock(run_at),
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if note is not None:
            values["errors"] = _errors_with(job, note)
        return self._set_outcome(job, values, "snooze")

    def cancel_running(self, job: Job, error: JobError) -> bool:
        values = {
            "state": JobState.CANCELLED.value,
            "finished_at": _dialects.db_now(),
            "errors": _errors_with(job, error),
            "lease_owner": None,
            "lease_expires_at": None,
            "unique_key": _statements.KEY_WHEN_FINISHED,
            **_erasing(job),
        }
        return self._set_outcome(job, values, "cancel")
