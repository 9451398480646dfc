"""The sqljobs tables, as SQLAlchemy Core objects on their own :data:`metadata`.

Quick start: ``jobs.create_schema()`` creates them. With Alembic, add this metadata to your
``env.py`` so autogenerate manages the tables with the rest of your schema::

    import sqljobs
    target_metadata = [Base.metadata, sqljobs.metadata]

Generated migrations refer to :class:`UTCDateTime` and :class:`StoredJSON` as
``sqljobs.schema.UTCDateTime()`` and ``sqljobs.schema.StoredJSON()``: those names (and
everything in ``__all__``) are stable, so old migrations keep importing.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator

__all__ = [
    "StoredJSON",
    "UTCDateTime",
    "UndecodableJSON",
    "dependencies_table",
    "graphs_table",
    "job_logs_table",
    "jobs_table",
    "keys_table",
    "metadata",
    "queues_table",
    "steps_table",
    "workers_table",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC with microseconds on every dialect; returns aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"sqljobs stores aware datetimes only, got naive {value!r}")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


class UndecodableJSON(str):
    """A stored value that is not JSON at all (SQLite keeps JSON as unchecked text, so a row
    written by hand can hold anything): the raw text, so one bad row fails its own job
    instead of every query that reads it."""


class StoredJSON(TypeDecorator[Any]):
    """JSON whose undecodable stored text reads back as :class:`UndecodableJSON`."""

    impl = JSON
    cache_ok = True
    should_evaluate_none = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        decode = self.impl_instance.dialect_impl(dialect).result_processor(dialect, coltype)
        if decode is None:
            return None

        def process(value: Any) -> Any:
            try:
                return decode(value)
            except ValueError:
                return UndecodableJSON(value)

        return process


#: The MetaData holding every sqljobs table. Give it to Alembic next to your own.
metadata = MetaData()

_ID = BigInteger().with_variant(Integer(), "sqlite")

jobs_table = Table(
    "sqljobs_jobs",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("queue", String(100), nullable=False),
    Column("task", String(255), nullable=False),
    Column("args", StoredJSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("attempt", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("run_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UTCDateTime),
    Column("errors", JSON),
    Column("result", JSON),
    Column("progress", Float),
    Column("progress_message", String(500)),
    # Present only while the job's uniqueness applies (see unique_scope); NULLs never clash.
    Column("unique_key", String(255), unique=True),
    Column("unique_scope", String(16)),
    Index("ix_sqljobs_jobs_claim", "queue", "state", "priority", "run_at", "id"),
    Index("ix_sqljobs_jobs_run_at", "state", "run_at"),
    Index("ix_sqljobs_jobs_lease", "state", "lease_expires_at"),
    Index("ix_sqljobs_jobs_finished", "state", "finished_at"),
    # -- per-key flow control (sqljobs.KeyLimit; docs/workflows.md "Per-key limits") --------
    # The job's key and its limits travel with the row, so every worker enforces the rule the
    # enqueuer gave, whatever its own code says. All NULL: the job has no key.
    Column("flow_key", String(255)),
    Column("flow_limit", Integer),  # most running jobs of the key at once
    Column("flow_fifo", Boolean),  # one at a time, in enqueue (id) order
    Column("flow_rate", Integer),  # most starts of the key per flow_period seconds
    Column("flow_period", Float),
    Index("ix_sqljobs_jobs_flow", "flow_key", "state", "id"),
    # -- end of per-key flow control ------------------------------------------------------
    # -- job graphs (docs/workflows.md "Job graphs") -------------------------------------
    # The graph a job belongs to (None: none); a job with it set settles its dependents when
    # it finishes, in the same transaction.
    Column("graph_id", _ID),
    # While the job is ``blocked``: how many of its dependencies have not finished yet.
    Column("waiting_for", Integer),
    Index("ix_sqljobs_jobs_graph", "graph_id"),
    # -- end of job graphs ---------------------------------------------------------------
    # -- tracing (issue 15, item 1; docs/tracing.md) ------------------------------------
    # The W3C trace context current when the job was enqueued (``{"traceparent": ...,
    # "tracestate": ...}``), when tracing is on; NULL otherwise. Nullable, so
    # ``create_schema()`` adds it to an existing table and older workers never name it.
    Column("trace_context", JSON(none_as_null=True)),
    # -- end of tracing ------------------------------------------------------------------
)

#: Per-queue settings every worker obeys: a global concurrency limit and a rate limit, with the
#: rate limit's current window.
queues_table = Table(
    "sqljobs_queues",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("global_limit", Integer),
    Column("rate_limit", Integer),
    Column("rate_period", Float),
    Column("window_start", UTCDateTime),
    Column("window_count", Integer, nullable=False, default=0),
    # -- added by issue 15 (pause a queue) -------------------------------------------------
    # A column added after the first release: it has a server default so that
    # ``create_schema()`` can add it to an existing table (``store/_upgrade.py``) and old
    # workers, which never name it, keep inserting rows.
    Column("paused", Boolean, nullable=False, default=False, server_default=false()),
    # -- end of issue 15 -------------------------------------------------------------------
)

#: One row per key of per-key flow control: the row claimers lock while they count a key's
#: running jobs (so claimers in every process see each other), and the key's rate window.
keys_table = Table(
    "sqljobs_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("window_start", UTCDateTime),
    Column("window_count", Integer, nullable=False, default=0),
)

# -- job graphs (docs/workflows.md "Job graphs") -----------------------------------------
#: One row per enqueued graph: its failure policy and an optional name.
graphs_table = Table(
    "sqljobs_graphs",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(200)),
    #: "cancel": a dependency discarded or cancelled cancels its dependents (and theirs);
    #: "continue": they run anyway, receiving None for its result.
    Column("on_failure", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

#: One row per dependency: ``job_id`` waits for ``parent_id``. ``resolved`` flips once, when
#: the parent finishes (in the parent's finishing transaction, or by the maintenance sweep),
#: with the parent's outcome and, for a completed parent, a copy of its result: the dependent
#: gets it even if the parent was pruned meanwhile. ``arg``/``many``/``position``: the
#: dependent's parameter that receives the result (a list of results in ``position`` order
#: when ``many``).
dependencies_table = Table(
    "sqljobs_dependencies",
    metadata,
    Column("job_id", _ID, nullable=False),
    Column("parent_id", _ID, nullable=False),
    Column("position", Integer, nullable=False),
    Column("arg", String(100)),
    Column("many", Boolean, nullable=False),
    Column("resolved", Boolean, nullable=False),
    Column("outcome", String(16)),
    Column("result", StoredJSON),
    PrimaryKeyConstraint("job_id", "parent_id", name="pk_sqljobs_dependencies"),
    # By parent only: resolving an edge changes no entry of the index the finishing
    # transaction's locking read goes through (no InnoDB gap lock to wait for).
    Index("ix_sqljobs_dependencies_parent", "parent_id"),
    # The sweep's scan of unresolved edges.
    Index("ix_sqljobs_dependencies_open", "resolved", "parent_id"),
)
# -- end of job graphs -------------------------------------------------------------------

workers_table = Table(
    "sqljobs_workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", Text, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)

# -- durable steps (issue 14, item 1) ---------------------------------------------------------
#: One row per named step of a job (``ctx.step``): written by the worker that holds the job's
#: lease, the completed state and result in the same commit as the step's own writes. A new
#: table, so ``create_schema()`` adds it to an existing install and older workers never read
#: it. ``job_created_at`` copies the job's ``created_at``: SQLite can give a pruned job's id to
#: a new job, and a step row only belongs to the job whose id *and* creation time it holds.
steps_table = Table(
    "sqljobs_steps",
    metadata,
    Column("job_id", _ID, nullable=False),
    Column("name", String(200), nullable=False),
    Column("job_created_at", UTCDateTime, nullable=False),
    #: The step's place among the job's step calls (0, 1, ...) in its last run.
    Column("position", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("result", StoredJSON),
    Column("error", JSON),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    #: Seconds the last run took, measured by the worker.
    Column("duration", Float),
    PrimaryKeyConstraint("job_id", "name", name="pk_sqljobs_steps"),
)

# -- per-job logs (issue 15, item 4; docs/logs.md) --------------------------------------------
#: The log lines a task emitted during an attempt (``ctx.logger`` and ``logging`` calls in the
#: task's thread), written when the attempt ends in a transaction of the store's own (so a
#: rolled-back attempt keeps them), at most a capped number per attempt. A new table, so
#: ``create_schema()`` adds it to an existing install. Deleted with their job.
job_logs_table = Table(
    "sqljobs_job_logs",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("job_id", _ID, nullable=False),
    #: The job's ``created_at``: SQLite can give a pruned job's id to a new job.
    Column("job_created_at", UTCDateTime, nullable=False),
    Column("attempt", Integer, nullable=False),
    #: The line's place in its attempt (0, 1, ...).
    Column("position", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("level", String(16), nullable=False),
    Column("logger", String(255), nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_sqljobs_job_logs_job", "job_id", "attempt", "position"),
)
