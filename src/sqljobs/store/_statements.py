"""The job store's hot statements, built once with bound parameters.

Building a SQLAlchemy statement and its cache key costs more CPU than the round trip it makes;
these are built at import and only receive parameters per execution. Only store.py runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    Integer,
    String,
    bindparam,
    case,
    func,
    insert,
    null,
    select,
    text,
    update,
)

from ..jobs import JobState
from ..schema import UTCDateTime, jobs_table, queues_table, workers_table
from ._dialects import db_now
from ._precompiled import Precompiled

_jobs = jobs_table

#: A lease's end on the database's clock: its ``now()`` plus ``p_lease`` seconds. The worker's
#: own clock never decides when a lease expires (see ``db_now``).
LEASE_END = db_now(bindparam("p_lease", type_=Float))
#: Whole claimable rows carry the lease's end (computed by the database) under this name.
LEASE_END_COLUMN = "sqljobs_lease_end"

INSERT = insert(_jobs)
ID_BY_UNIQUE_KEY = select(_jobs.c.id).where(_jobs.c.unique_key == bindparam("p_key", type_=String))
LAST_INSERT_ID = text("SELECT LAST_INSERT_ID()")

#: The unique key a job keeps once it stops waiting (claimed) or stops being active (finished).
KEY_WHILE_ACTIVE = case(
    (_jobs.c.unique_scope.in_(["active", "all"]), _jobs.c.unique_key), else_=None
)
KEY_WHEN_FINISHED = case((_jobs.c.unique_scope == "all", _jobs.c.unique_key), else_=None)


def insert_if_new(dialect_name: str) -> Any:
    """INSERT that yields nothing (PostgreSQL, SQLite) or points LAST_INSERT_ID at the existing
    row (MariaDB/MySQL) when the unique key is taken."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return (
            pg_insert(_jobs)
            .on_conflict_do_nothing(index_elements=[_jobs.c.unique_key])
            .returning(_jobs.c.id)
        )
    if dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return (
            sqlite_insert(_jobs)
            .on_conflict_do_nothing(index_elements=[_jobs.c.unique_key])
            .returning(_jobs.c.id)
        )
    from sqlalchemy.dialects.mysql import insert as mysql_insert

    statement = mysql_insert(_jobs)
    return statement.on_duplicate_key_update(id=func.last_insert_id(_jobs.c.id))


INSERT_RETURNING_IDS = insert(_jobs).returning(_jobs.c.id, sort_by_parameter_order=True)

#: PostgreSQL: many new jobs as one short statement with one JSON parameter, whatever their
#: number. A multi-row ``VALUES`` list has a dozen placeholders per row that the driver
#: re-parses for each batch, and text arrays are escaped element by element; one JSON array of
#: rows is encoded by the C json encoder and decoded by the server. Ids come from the sequence
#: in ``ORDER BY n`` order, so the returned ids sorted ascending match the rows' order.
ARRAY_INSERT = text(
    "INSERT INTO sqljobs_jobs "
    "(queue, task, args, state, priority, attempt, max_attempts, run_at, created_at, errors) "
    "SELECT j->>0, j->>1, j->2, j->>3, CAST(j->>4 AS integer), 0, CAST(j->>5 AS integer), "
    "CAST(j->>6 AS timestamp), :p_now, CAST('[]' AS json) "
    "FROM json_array_elements(CAST(:p_rows AS json)) WITH ORDINALITY AS new_job(j, n) "
    "ORDER BY n RETURNING id"
).bindparams(bindparam("p_now", type_=UTCDateTime()), bindparam("p_rows", type_=String))
#: Rows per ARRAY_INSERT statement.
ARRAY_INSERT_CHUNK = 5000


def array_insert_params(
    rows: Sequence[dict[str, Any]], now: datetime, dump_json: Callable[[Any], str]
) -> dict[str, Any]:
    """NewJob values (without unique keys) as ARRAY_INSERT's parameters."""
    payload = [
        (
            r["queue"],
            r["task"],
            r["args"],
            r["state"],
            r["priority"],
            r["max_attempts"],
            r["run_at"].astimezone(timezone.utc).replace(tzinfo=None).isoformat(),
        )
        for r in rows
    ]
    return {"p_now": now, "p_rows": dump_json(payload)}


NOTIFY = text("SELECT pg_notify(:p_channel, :p_queue)")

_INSERTED_COLUMNS = [c for c in _jobs.c if c.name != "id"]
#: PostgreSQL: ``WITH j AS (INSERT ... RETURNING id, queue) SELECT id, pg_notify(...)``; the
#: notification is delivered when the transaction commits, and only then.
_inserted = (
    insert(_jobs)
    .values(
        {
            c.name: bindparam(
                f"v_{c.name}", type_=JSON(none_as_null=True) if isinstance(c.type, JSON) else c.type
            )
            for c in _INSERTED_COLUMNS
        }
    )
    .returning(_jobs.c.id, _jobs.c.queue, _jobs.c.state)
    .cte("inserted")
)
INSERT_AND_NOTIFY = select(
    _inserted.c.id,
    func.pg_notify(
        bindparam("p_channel", type_=String),
        case((_inserted.c.state == JobState.AVAILABLE.value, _inserted.c.queue), else_=""),
    ),
).select_from(_inserted)
PRECOMPILED_INSERT_AND_NOTIFY = Precompiled(INSERT_AND_NOTIFY)


def notify_insert_params(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` (a NewJob's values) as INSERT_AND_NOTIFY's parameters."""
    return {f"v_{c.name}": row.get(c.name) for c in _INSERTED_COLUMNS}


#: A worker may write a job's outcome only while it holds the job's lease.
OWNED = (
    (_jobs.c.id == bindparam("p_id", type_=Integer))
    & (_jobs.c.state == JobState.RUNNING.value)
    & (_jobs.c.lease_owner == bindparam("p_owner", type_=String))
    & (_jobs.c.attempt == bindparam("p_attempt", type_=Integer))
)

COMPLETE = (
    update(_jobs)
    .where(OWNED)
    .values(
        state=JobState.COMPLETED.value,
        finished_at=db_now(),
        lease_owner=None,
        lease_expires_at=None,
        result=bindparam("p_result", type_=JSON(none_as_null=True)),
        unique_key=KEY_WHEN_FINISHED,
    )
)

#: COMPLETE for a job holding secrets: their tokens are erased in the same statement.
COMPLETE_ERASING = COMPLETE.values(args=bindparam("p_args", type_=_jobs.c.args.type))
#: One job's completion as a worker sends it, compiled once per dialect (see _precompiled).
PRECOMPILED_COMPLETE = Precompiled(COMPLETE)
PRECOMPILED_COMPLETE_ERASING = Precompiled(COMPLETE_ERASING)

_WAITING = _jobs.c.state.in_([JobState.SCHEDULED.value, JobState.RETRYABLE.value])
#: Jobs whose time came by the database's clock, or by ``p_until`` (``drain()`` looks ahead).
_DUE = _jobs.c.run_at <= db_now()
_DUE_BY = _jobs.c.run_at <= bindparam("p_until", type_=UTCDateTime)
STAGE = update(_jobs).where(_WAITING, _DUE).values(state=JobState.AVAILABLE.value)
STAGE_UNTIL = update(_jobs).where(_WAITING, _DUE_BY).values(state=JobState.AVAILABLE.value)


#: MariaDB/MySQL stage in two steps (see ``_rowcount_by_locked_ids``). One ``UPDATE ... WHERE
#: state IN (...)`` scans the ``(state, run_at)`` index and, like every InnoDB range scan,
#: locks the first entry past the range - a running job's - then waits for that job's row,
#: which the job's own transaction holds while its completion waits for the index entry: a
#: deadlock that rolls the job back. Locking the due rows with SKIP LOCKED never waits, and the
#: update then goes by id.
def locked_ids(*conditions: Any) -> Any:
    """``SELECT id`` of up to ``p_limit`` rows matching ``conditions``, locked with SKIP
    LOCKED: the first step of ``StoreBase._rowcount_by_locked_ids``."""
    return (
        select(_jobs.c.id)
        .where(*conditions)
        .limit(bindparam("p_limit", type_=Integer, literal_execute=True))
        .with_for_update(skip_locked=True)
    )


STAGE_DUE_IDS = locked_ids(_WAITING, _DUE)
STAGE_UNTIL_IDS = locked_ids(_WAITING, _DUE_BY)
STAGE_IDS = (
    update(_jobs)
    .where(_jobs.c.id.in_(bindparam("p_ids", expanding=True)))
    .values(state=JobState.AVAILABLE.value)
)

RENEW_LEASES = (
    update(_jobs)
    .where(_jobs.c.id.in_(bindparam("p_ids", expanding=True)))
    .where(_jobs.c.lease_owner == bindparam("p_owner", type_=String))
    .where(_jobs.c.state == JobState.RUNNING.value)
    .values(lease_expires_at=LEASE_END)
)

#: The queue's settings, and the database's time for its rate-limit window.
LOCK_QUEUE = (
    select(queues_table, db_now().label("db_now"))
    .where(queues_table.c.name == bindparam("p_queue", type_=String))
    .with_for_update()
)
COUNT_RUNNING = (
    select(func.count())
    .select_from(_jobs)
    .where(_jobs.c.queue == bindparam("p_queue", type_=String))
    .where(_jobs.c.state == JobState.RUNNING.value)
)
COUNT_STARTS = (
    update(queues_table)
    .where(queues_table.c.name == bindparam("p_queue", type_=String))
    .values(
        window_start=bindparam("p_start", type_=UTCDateTime),
        window_count=bindparam("p_count", type_=Integer),
    )
)

SAVE_PROGRESS = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("p_id", type_=Integer))
    .where(_jobs.c.lease_owner == bindparam("p_owner", type_=String))
    .values(
        progress=bindparam("p_progress", type_=Float),
        progress_message=bindparam("p_message", type_=String),
    )
)

HELD = (
    select(_jobs.c.id)
    .where(_jobs.c.id.in_(bindparam("p_ids", expanding=True)))
    .where(_jobs.c.lease_owner == bindparam("p_owner", type_=String))
    .where(_jobs.c.state == JobState.RUNNING.value)
)

WORKER_ALIVE = (
    update(workers_table)
    .where(workers_table.c.id == bindparam("p_owner", type_=String))
    .values(heartbeat_at=db_now())
)

RUNNING_VALUES: dict[str, Any] = {
    "state": JobState.RUNNING.value,
    "attempt": _jobs.c.attempt + 1,
    # Set when the attempt starts: by MARK_STARTED when an executor takes the job from
    # prefetch, or by the claim itself (``p_started``) when every job it takes goes to an
    # executor idle at that moment. A claim whose answer never reached its worker leaves it
    # NULL (or is given back by its worker, see LeaseStore.give_back_unheld), and rescue gives
    # that attempt back.
    "started_at": case((bindparam("p_started", type_=Boolean), db_now()), else_=null()),
    "lease_owner": bindparam("p_owner", type_=String),
    "lease_expires_at": LEASE_END,
    "unique_key": KEY_WHILE_ACTIVE,
}


def claimable(
    *, skip_locked: bool, by_id: bool, whole_rows: bool = False, by_task: bool = False
) -> Any:
    """``SELECT id`` (or whole rows) of the next available jobs in claim order (an
    index-ordered scan). ``by_task``: only jobs of the tasks in ``p_tasks`` (those the worker
    has registered), a filter on the rows the same index scan reads. Whole rows come with
    the lease's end on the database's clock, for CLAIM_SELECTED."""
    query = (
        (select(_jobs, LEASE_END.label(LEASE_END_COLUMN)) if whole_rows else select(_jobs.c.id))
        .where(_jobs.c.queue.in_(bindparam("p_queues", expanding=True)))
        .where(_jobs.c.state == JobState.AVAILABLE.value)
        .order_by(_jobs.c.priority, _jobs.c.run_at, _jobs.c.id)
        .limit(bindparam("p_limit", type_=Integer, literal_execute=True))
    )
    if by_id:
        query = query.where(_jobs.c.id.in_(bindparam("p_only", expanding=True)))
    if by_task:
        query = query.where(_jobs.c.task.in_(bindparam("p_tasks", expanding=True)))
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return query


#: PostgreSQL: the claim's commit does not wait for its WAL flush. Safe because a claim
#: lost in a server crash only makes its job claimable again (at-least-once), and whatever a
#: worker commits next - the job's effects with its completion - is flushed with synchronous
#: commit, which flushes the claim's earlier WAL too. Saves a disk flush per claim. Set in
#: RETURNING (evaluated per claimed row, in force at the commit): a volatile function in the
#: WHERE clause would change the plan and re-run the LIMIT subquery for every row.
_CLAIM_WITHOUT_FLUSH_WAIT = func.set_config("synchronous_commit", "off", True).label(
    "no_flush_wait"
)


def claim_returning(
    *, skip_locked: bool, by_id: bool, by_task: bool = False, skip_flush_wait: bool = False
) -> Any:
    """Claim in one statement: ``UPDATE ... WHERE id IN (claimable) RETURNING *``."""
    extra = [_CLAIM_WITHOUT_FLUSH_WAIT] if skip_flush_wait else []
    chosen = claimable(skip_locked=skip_locked, by_id=by_id, by_task=by_task)
    return (
        update(_jobs)
        .where(_jobs.c.id.in_(chosen))
        .values(RUNNING_VALUES)
        .returning(*_jobs.c, *extra)
    )


CLAIM_SELECTED = (
    update(_jobs)
    .where(_jobs.c.id.in_(bindparam("p_chosen", expanding=True)))
    .values({**RUNNING_VALUES, "lease_expires_at": bindparam("p_until", type_=UTCDateTime)})
)
#: The worker starts a job only if it still holds it (not cancelled, rescued or released
#: meanwhile, e.g. while it waited in prefetch): a cancelled job never starts.
MARK_STARTED = update(_jobs).where(OWNED).values(started_at=db_now())
PRECOMPILED_START = Precompiled(MARK_STARTED)

SELECT_BY_IDS = select(_jobs).where(_jobs.c.id.in_(bindparam("p_chosen", expanding=True)))
