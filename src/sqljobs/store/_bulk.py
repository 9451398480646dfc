"""Bulk administration: retry, cancel or delete every job matching a filter, in batches, and
pause or resume a queue. Part of the job store.

Each batch is two short transactions: a read of the next candidate ids (ascending, above the
last batch's), then one write transaction that locks those rows *re-checked against the
filter* (``SELECT ... FOR UPDATE`` on PostgreSQL and MariaDB, SQLite's write lock) and changes
only the rows it got back. So a job that stopped matching in between (a worker claimed it, it
finished) is left as it now is, and no lock is held between batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from .._secrets import erased_names
from ..exceptions import UniqueKeyConflict
from ..jobs import Job, JobState
from . import _statements
from ._base import (
    JobFilters,
    StoreBase,
    _erasing,
    _errors_with,
    _jobs,
    _operator_cancel,
    _queues,
    filtered,
    owned_rows_deletion,
    row_to_job,
)
from ._dialects import db_now

BulkAction = Literal["retry", "cancel", "delete"]

#: The most jobs one batch locks and changes.
MAX_BATCH = 1000


@dataclass(slots=True)
class BatchOutcome:
    """What one batch (or, summed, a whole bulk operation) did."""

    changed: list[Job] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


class BulkStore(StoreBase):
    """Statements of bulk operations and queue pausing."""

    def count_matching(self, filters: JobFilters, states: Sequence[str]) -> int:
        """How many jobs ``filters`` selects among ``states`` (the dry run)."""
        query = filtered(select(func.count()).select_from(_jobs), filters, among=states)
        return self.run(
            lambda conn: int(conn.execute(query).scalar_one()), what="count jobs", read_only=True
        )

    def newest_job_id(self) -> int:
        """The highest job id now: a bulk operation stops there, so jobs enqueued while it runs
        are not part of it."""
        query = select(func.max(_jobs.c.id))
        return self.run(
            lambda conn: int(conn.execute(query).scalar() or 0), what="newest job", read_only=True
        )

    def next_candidates(
        self, filters: JobFilters, states: Sequence[str], *, after: int, upto: int, limit: int
    ) -> list[int]:
        """Ids of up to ``limit`` matching jobs in ``(after, upto]``, ascending; no locks."""
        query = filtered(select(_jobs.c.id), filters, among=states)
        query = query.where(_jobs.c.id > after, _jobs.c.id <= upto)
        query = query.order_by(_jobs.c.id).limit(limit)
        return self.run(
            lambda conn: [int(i) for i in conn.execute(query).scalars()],
            what="find jobs",
            read_only=True,
        )

    def apply_batch(
        self,
        action: BulkAction,
        ids: Sequence[int],
        filters: JobFilters,
        states: Sequence[str],
        *,
        unique_key_of: Callable[[Job], str | None] | None = None,
    ) -> BatchOutcome:
        """In one transaction: lock the rows of ``ids`` that still match, change them.

        Safe to repeat (a lost answer is retried): a changed job no longer matches the
        filter of the action that changed it (cancelled, deleted, or retried into
        ``available``, where a second retry only moves ``run_at`` to now again).
        """
        pick = filtered(select(_jobs), filters, among=states).where(_jobs.c.id.in_(list(ids)))
        pick = pick.order_by(_jobs.c.id)
        if self.support.skip_locked:
            pick = pick.with_for_update()

        def work(conn: Connection) -> BatchOutcome:
            outcome = BatchOutcome()
            rows = [row_to_job(r) for r in conn.execute(pick)]
            if action == "delete":
                if rows:
                    ids = [j.id for j in rows]
                    for statement in owned_rows_deletion(ids):  # its steps and logs
                        conn.execute(statement)
                    conn.execute(delete(_jobs).where(_jobs.c.id.in_(ids)))
                outcome.changed = rows
            elif action == "cancel":
                for job in rows:
                    conn.execute(_cancel_row(job))
                    outcome.changed.append(replace(job, state=JobState.CANCELLED))
            else:
                for job in rows:
                    why = self._retry_row(conn, job, unique_key_of)
                    if why is None:
                        outcome.changed.append(replace(job, state=JobState.AVAILABLE))
                    else:
                        outcome.skipped[job.id] = why
            return outcome

        return self.run(work, what=f"bulk {action}")

    def _retry_row(
        self, conn: Connection, job: Job, unique_key_of: Callable[[Job], str | None] | None
    ) -> str | None:
        """Make ``job`` run again now; the reason it was left alone, or None."""
        gone = erased_names(job.args)
        if gone:
            return f"its secret argument(s) {', '.join(map(repr, gone))} were erased"
        values: dict[str, Any] = {
            "state": JobState.AVAILABLE.value,
            "run_at": db_now(),
            "finished_at": None,
            "max_attempts": max(job.max_attempts, job.attempt + 1),
        }
        try:
            key = unique_key_of(job) if unique_key_of is not None else None
        except UniqueKeyConflict as exc:
            return str(exc)
        change = update(_jobs).where(_jobs.c.id == job.id)
        if key is None:
            conn.execute(change.values(values))
            return None
        holder = conn.execute(
            select(_jobs.c.id, _jobs.c.state)
            .where(_jobs.c.unique_key == key)
            .where(_jobs.c.id != job.id)
        ).first()
        if holder is not None:
            return f"job {holder.id} ({holder.state}) holds its unique key"
        try:
            with conn.begin_nested():  # an enqueue may take the key since the look-up
                conn.execute(change.values({**values, "unique_key": key}))
        except IntegrityError:
            return "a job enqueued meanwhile holds its unique key"
        return None

    # -- pausing queues ------------------------------------------------------------------

    def set_paused(self, name: str, paused: bool) -> None:
        """Pause or resume queue ``name`` for every worker (its settings row is created)."""

        def work(conn: Connection) -> None:
            changed: Any = conn.execute(
                update(_queues).where(_queues.c.name == name).values(paused=paused)
            )
            if changed.rowcount == 0:
                conn.execute(insert(_queues).values(name=name, window_count=0, paused=paused))

        self.run(work, what="pause queue" if paused else "resume queue")

    def paused_queues(self) -> list[str]:
        """Names of the paused queues, sorted."""
        query = select(_queues.c.name).where(_queues.c.paused).order_by(_queues.c.name)
        return self.run(
            lambda conn: list(conn.execute(query).scalars()), what="paused queues", read_only=True
        )


def _cancel_row(job: Job) -> Any:
    return (
        update(_jobs)
        .where(_jobs.c.id == job.id)
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
