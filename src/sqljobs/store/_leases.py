"""Leases and workers: give jobs back, renew leases (with progress), rescue expired ones,
and keep the table of live workers."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, delete, insert, literal, select, update
from sqlalchemy.engine import Connection

from .._utils import utcnow
from ..exceptions import StoreError
from ..jobs import Job, JobError, JobState
from . import _sessions, _statements
from ._base import (
    NOTIFY_CHANNEL,
    _erasing,
    _errors_with,
    _jobs,
    _owned_by,
    _owner_params,
    _workers,
    row_to_job,
)
from ._dialects import db_now
from ._inspection import InspectionStore
from ._sessions import SessionConnection
from ._settle import Finished, settle

log = logging.getLogger("sqljobs.store")


class LeaseStore(InspectionStore):
    """The lease and worker statements of :class:`~sqljobs.store.JobStore`."""

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
                        started_at=None,  # a claim for an idle executor may have set it
                        run_at=db_now(),
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                )
                released += outcome.rowcount
            return released

        return self.run(work, what="release") if owned else 0

    # -- leases --------------------------------------------------------------------------

    def mark_started(self, job: Job) -> bool:
        """Record that ``job``'s attempt starts now; False if this worker no longer holds it
        (cancelled, rescued or released meanwhile): then it must not start."""
        params = _owner_params(job)
        started = self.run(
            lambda conn: _statements.PRECOMPILED_START.execute(conn, params).rowcount,
            what="start",
            single_statement=True,
        )
        return bool(started == 1)

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
            params = {"p_owner": worker_id, "p_lease": lease.total_seconds()}
            if job_ids:
                conn.execute(_statements.RENEW_LEASES, {**params, "p_ids": list(job_ids)})
            conn.execute(_statements.WORKER_ALIVE, params)
            if not check_ids:
                return set()
            held = conn.execute(_statements.HELD, {**params, "p_ids": list(check_ids)})
            return set(check_ids) - set(held.scalars())

        lost = self.run(work, what="heartbeat")
        # Progress is stored per job, after the leases: one job's unstorable value fails
        # only that job's progress, never the other jobs' lease renewal.
        for job_id, fraction, message in progress:
            row = {
                "p_id": job_id,
                "p_owner": worker_id,
                "p_progress": fraction,
                "p_message": message,
            }
            try:
                self._rowcount(_statements.SAVE_PROGRESS, "save progress", row)
            except StoreError as exc:
                log.warning("progress of job %s not stored: %s", job_id, exc)
        return lost

    def save_progress(self, job_id: int, fraction: float, message: str) -> None:
        """Store a job's last progress whatever its state (after ``drain()`` ran it)."""
        statement = (
            update(_jobs)
            .where(_jobs.c.id == job_id)
            .values(progress=fraction, progress_message=message)
        )
        self._rowcount(statement, "save progress")

    def rescue(self, *, limit: int = 100) -> list[int]:
        """Requeue running jobs whose lease expired (their worker died); counts the attempt,
        unless the job never started (``started_at`` unset: the claim's answer never reached
        its worker, or it waited in a worker's prefetch): that attempt is given back.

        Expiry is judged on the database's clock, which set the lease: a rescuer whose own
        clock runs ahead never takes a healthy job from its worker."""

        def work(conn: Connection) -> list[int]:
            now = utcnow()  # only for the notes' times; every decision uses the database's
            query = (
                select(_jobs)
                .where(_jobs.c.state == JobState.RUNNING.value)
                .where(_jobs.c.lease_expires_at < db_now())
                .order_by(_jobs.c.lease_expires_at)
                .limit(limit)
            )
            if self.support.skip_locked:
                query = query.with_for_update(skip_locked=True)
            rescued = []
            for job in (row_to_job(r) for r in conn.execute(query)):
                if job.started_at is None:
                    conn.execute(
                        update(_jobs).where(_owned_by(job)).values(_never_started(job, now))
                    )
                    rescued.append(job.id)
                    continue
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
                    "run_at": db_now(),
                }
                if final:
                    values["finished_at"] = db_now()
                    values["unique_key"] = _statements.KEY_WHEN_FINISHED
                    values.update(_erasing(job))
                changed: Any = conn.execute(update(_jobs).where(_owned_by(job)).values(values))
                if final and changed.rowcount == 1 and job.graph_id is not None:
                    channel = NOTIFY_CHANNEL if self.support.listen_notify else None
                    finished = [Finished(job.id, JobState.DISCARDED.value)]
                    settle(conn, finished, notify_channel=channel)
                rescued.append(job.id)
            return rescued

        return self.run(work, what="rescue")

    def give_back_unheld(self, *, worker_id: str, held_ids: Sequence[int]) -> list[int]:
        """Give back the running jobs ``worker_id`` owns but does not hold (not in
        ``held_ids``): a claim of its whose answer was lost took them. Their attempt is
        not counted (a ``NeverStarted`` note says why), even where that claim recorded
        their start, since none of them ran."""

        def work(conn: Connection) -> list[int]:
            now = utcnow()
            query = (
                select(_jobs)
                .where(_jobs.c.lease_owner == worker_id)
                .where(_jobs.c.state == JobState.RUNNING.value)
            )
            if held_ids:
                query = query.where(_jobs.c.id.not_in(list(held_ids)))
            if self.support.skip_locked:
                query = query.with_for_update(skip_locked=True)
            given_back = []
            for job in (row_to_job(r) for r in conn.execute(query)):
                conn.execute(update(_jobs).where(_owned_by(job)).values(_never_started(job, now)))
                given_back.append(job.id)
            return given_back

        return self.run(work, what="give back unheld jobs")

    # -- hung job sessions ----------------------------------------------------------------

    def session_connection(self, conn: Connection) -> SessionConnection:
        """Who ``conn`` (a job session's connection) is on the server, for :meth:`end_session`;
        read from the driver without a round trip on psycopg, PyMySQL and sqlite3."""
        return _sessions.identify(conn)

    def end_session(self, session: SessionConnection) -> None:
        """End a job session's database work from another thread (it timed out or lost its
        lease): its transaction is rolled back and its locks are released on return."""
        _sessions.end(session, lambda work: self.run(work, what="end a job session"))

    def discard_session(self, session: SessionConnection) -> None:
        """Close the driver connection of a session :meth:`end_session` ended; call it from
        the thread that used the session, once that session is done."""
        _sessions.discard(session)

    # -- workers -------------------------------------------------------------------------

    def wake_listeners(self) -> None:
        """PostgreSQL: an empty notification on the jobs channel, which wakes every LISTENing
        worker at once (a stopping worker's own listener returns at once, not at its next
        check); workers ignore the empty queue name."""
        self.run(
            lambda conn: conn.execute(
                _statements.NOTIFY, {"p_channel": NOTIFY_CHANNEL, "p_queue": ""}
            ),
            what="wake listeners",
            single_statement=True,
        )

    def register_worker(
        self, *, worker_id: str, hostname: str, pid: int, queues: Sequence[str], concurrency: int
    ) -> None:
        def work(conn: Connection) -> None:
            conn.execute(
                insert(_workers).values(
                    id=worker_id,
                    hostname=hostname,
                    pid=pid,
                    queues=",".join(queues),
                    concurrency=concurrency,
                    started_at=db_now(),
                    heartbeat_at=db_now(),
                )
            )

        self.run(work, what="register worker")

    def unregister_worker(self, worker_id: str) -> None:
        self.run(
            lambda conn: conn.execute(delete(_workers).where(_workers.c.id == worker_id)),
            what="unregister worker",
        )

    def prune_workers(self, *, silent_for: timedelta) -> int:
        """Forget workers whose heartbeat is older than ``silent_for`` by the database's clock
        (which stamped it)."""
        silent_since = db_now(literal(-silent_for.total_seconds(), Float))
        statement = delete(_workers).where(_workers.c.heartbeat_at < silent_since)
        return self._rowcount(statement, "prune workers")


def _never_started(job: Job, now: datetime) -> dict[str, Any]:
    """Rescue of a claimed job that never started: back to the queue, attempt not counted,
    with a note saying so."""
    note = JobError(
        attempt=job.attempt,
        at=now,
        type="NeverStarted",
        message=f"claimed by worker {job.lease_owner}, which never started it (the claim's "
        "answer was lost, or the worker died first); back in the queue, the attempt not "
        "counted",
        traceback="",
    )
    return {
        "state": JobState.AVAILABLE.value,
        "attempt": _jobs.c.attempt - 1,
        "errors": _errors_with(job, note),
        "started_at": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "run_at": db_now(),
    }
