"""Statements of per-key flow control (KeyLimit) and debounce; only the store runs them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    String,
    and_,
    bindparam,
    case,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from ..jobs import JobState
from ..schema import UTCDateTime, jobs_table, keys_table
from ._dialects import db_now

_jobs = jobs_table
_keys = keys_table

#: States in which a job still stands in its key's line (FIFO): it has not finished.
UNFINISHED = [
    JobState.SCHEDULED.value,
    JobState.AVAILABLE.value,
    JobState.RUNNING.value,
    JobState.RETRYABLE.value,
]
#: States a debounce may rewrite: waiting, never claimed. A claimed job's key is gone anyway.
DEBOUNCE_REWRITABLE = [JobState.SCHEDULED.value, JobState.AVAILABLE.value]

_others = _jobs.alias("flow_others")
_head = _jobs.alias("flow_head")
_window = _keys.alias("flow_window")

_running_of_key = (
    select(func.count())
    .select_from(_others)
    .where(_others.c.flow_key == _jobs.c.flow_key)
    .where(_others.c.state == JobState.RUNNING.value)
    .scalar_subquery()
)
_head_of_key = (
    select(func.min(_head.c.id))
    .where(_head.c.flow_key == _jobs.c.flow_key)
    .where(_head.c.state.in_(UNFINISHED))
    .scalar_subquery()
)
_rate_used_up = (
    select(_window.c.key)
    .where(_window.c.key == _jobs.c.flow_key)
    .where(_window.c.window_count >= _jobs.c.flow_rate)
    .where(_window.c.window_start > db_now(-_jobs.c.flow_period))
    .exists()
)

#: Available jobs of the tasks ``p_tasks`` in claim order whose key (if any) looks free: fewer
#: running than its limit, the key's head (FIFO), its rate window not used up. Read without
#: locks: the claim re-checks each key under its lock (see ``FlowStore.claim_keyed``). Keys
#: that are busy are filtered here, so a long line of one key never hides the other keys.
KEYED_CANDIDATES = (
    select(
        _jobs.c.id,
        _jobs.c.flow_key,
        _jobs.c.flow_limit,
        _jobs.c.flow_fifo,
        _jobs.c.flow_rate,
        _jobs.c.flow_period,
    )
    .where(_jobs.c.queue.in_(bindparam("p_queues", expanding=True)))
    .where(_jobs.c.state == JobState.AVAILABLE.value)
    .where(_jobs.c.task.in_(bindparam("p_tasks", expanding=True)))
    .where(
        or_(
            _jobs.c.flow_key.is_(None),
            and_(
                or_(_jobs.c.flow_limit.is_(None), _running_of_key < _jobs.c.flow_limit),
                or_(
                    _jobs.c.flow_fifo.is_(None),
                    _jobs.c.flow_fifo == false(),
                    _jobs.c.id == _head_of_key,
                ),
                or_(_jobs.c.flow_rate.is_(None), ~_rate_used_up),
            ),
        )
    )
    .order_by(_jobs.c.priority, _jobs.c.run_at, _jobs.c.id)
    .limit(bindparam("p_limit", type_=Integer, literal_execute=True))
)

EXISTING_KEYS = select(_keys.c.key).where(_keys.c.key.in_(bindparam("p_keys", expanding=True)))


def lock_keys(*, skip_locked: bool) -> Any:
    """The key rows of ``p_keys`` with the database's now, locked for this claim; rows another
    claimer holds are skipped (it is serving that key)."""
    query = (
        select(_keys, db_now().label("db_now"))
        .where(_keys.c.key.in_(bindparam("p_keys", expanding=True)))
        .order_by(_keys.c.key)
    )
    return query.with_for_update(skip_locked=skip_locked)


RUNNING_BY_KEY = (
    select(_jobs.c.flow_key, func.count())
    .where(_jobs.c.flow_key.in_(bindparam("p_keys", expanding=True)))
    .where(_jobs.c.state == JobState.RUNNING.value)
    .group_by(_jobs.c.flow_key)
)
HEADS_BY_KEY = (
    select(_jobs.c.flow_key, func.min(_jobs.c.id))
    .where(_jobs.c.flow_key.in_(bindparam("p_keys", expanding=True)))
    .where(_jobs.c.state.in_(UNFINISHED))
    .group_by(_jobs.c.flow_key)
)
COUNT_KEY_STARTS = (
    update(_keys)
    .where(_keys.c.key == bindparam("p_key", type_=String))
    .values(
        window_start=bindparam("p_start", type_=UTCDateTime),
        window_count=bindparam("p_count", type_=Integer),
    )
)
#: Key rows no unfinished job needs: their rate window, if any, ended (by the database's
#: clock, ``p_age`` seconds ago). Deleted by prune.
_live_key = select(_jobs.c.id).where(_jobs.c.flow_key == _keys.c.key, _jobs.c.state.in_(UNFINISHED))
_stale = (
    ~_live_key.exists(),
    or_(
        _keys.c.window_start.is_(None),
        _keys.c.window_start < db_now(bindparam("p_age", type_=Float)),
    ),
)
#: Found by a plain read, deleted by key with the condition re-checked (see
#: ``StoreBase._delete_found``): no live job row is ever locked by pruning.
STALE_KEYS = (
    select(_keys.c.key)
    .where(*_stale)
    .limit(bindparam("p_limit", type_=Integer, literal_execute=True))
)
DELETE_STALE_KEYS = (
    _keys.delete().where(_keys.c.key.in_(bindparam("p_keys", expanding=True))).where(*_stale)
)


def new_keys(dialect_name: str, keys: list[str]) -> Any:
    """INSERT of ``keys``' rows that skips a row another claimer inserted meanwhile."""
    rows = [{"key": key, "window_count": 0} for key in keys]
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(_keys).values(rows).on_conflict_do_nothing()
    if dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(_keys).values(rows).on_conflict_do_nothing()
    return insert(_keys).values(rows).prefix_with("IGNORE")


def debounced_insert(dialect_name: str, row: dict[str, Any], window: float) -> Any:
    """INSERT of a debounced job, or, when a pending job holds its key, an UPDATE of that
    job: the new arguments, run ``window`` seconds after the database's now. One statement,
    so the unique index decides between concurrent enqueues; a claimed job holds no key, so
    it is never rewritten. Yields the id (PostgreSQL, SQLite) or sets LAST_INSERT_ID (MySQL)."""
    run_at = db_now(literal(window, Float))
    values = {**row, "run_at": run_at, "state": JobState.SCHEDULED.value}
    rewritable = and_(
        _jobs.c.unique_scope == row["unique_scope"], _jobs.c.state.in_(DEBOUNCE_REWRITABLE)
    )
    if dialect_name in ("postgresql", "sqlite"):
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        upsert: Any = (pg_insert if dialect_name == "postgresql" else sqlite_insert)(_jobs)
        upsert = upsert.values(values)
        return upsert.on_conflict_do_update(
            index_elements=[_jobs.c.unique_key],
            set_={
                "args": upsert.excluded.args,
                "run_at": upsert.excluded.run_at,
                "state": upsert.excluded.state,
            },
            where=rewritable,
        ).returning(_jobs.c.id)
    from sqlalchemy.dialects.mysql import insert as mysql_insert

    statement = mysql_insert(_jobs).values(values)
    # MySQL applies the assignments left to right, each seeing the ones before: the
    # condition reads state and scope, so state is assigned last.
    return statement.on_duplicate_key_update(
        [
            ("id", func.last_insert_id(_jobs.c.id)),
            ("args", case((rewritable, statement.inserted.args), else_=_jobs.c.args)),
            ("run_at", case((rewritable, statement.inserted.run_at), else_=_jobs.c.run_at)),
            ("state", case((rewritable, statement.inserted.state), else_=_jobs.c.state)),
        ]
    )
