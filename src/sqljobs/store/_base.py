"""The job store's foundation: row types, transactions with retries, error wrapping.

With :mod:`sqljobs.store._inspection` and :mod:`sqljobs.store._jobstore` it is the only code that
issues SQL (statements it reuses are built in :mod:`sqljobs.store._statements`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Delete, Row, Select, Update, delete, false, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from .._secrets import erased, has_secrets
from .._utils import utcnow
from ..exceptions import ConfigurationError, OutcomeUnknown, SchemaNotReady, StoreError
from ..jobs import FINISHED_STATES, Job, JobError, JobState
from ..schema import job_logs_table, jobs_table, metadata, queues_table, steps_table, workers_table
from . import _dialects, _pooling, _statements, _upgrade
from ._bound import current_binding

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
class JobFilters:
    """Which jobs a listing shows (``None``: no condition); used by the dashboard and CLI."""

    states: Sequence[JobState | str] | None = None
    queue: str | None = None
    task: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    #: The type of the job's last recorded error (``"TimeoutError"``, ``"JobTimeout"``, ...).
    error_type: str | None = None


def error_type_is(name: str) -> Any:
    """The job's last recorded error is of type ``name``: its full name as stored
    (``"myapp.mail.SMTPError"``, ``"ValueError"``) or its class name (``"SMTPError"``)."""
    last = _dialects.last_error_type(_jobs.c.errors)
    return (last == name) | last.endswith("." + name, autoescape=True)


#: Tables whose rows belong to a job (``job_id``) and are deleted with it, in its transaction.
JOB_OWNED_TABLES = (steps_table, job_logs_table)


def owned_rows_deletion(job_ids: Any) -> list[Delete]:
    """Delete what belongs to the jobs ``job_ids`` (a list, a subquery or an expanding
    bindparam) names: their steps and log lines. Run before deleting the jobs themselves."""
    return [delete(table).where(table.c.job_id.in_(job_ids)) for table in JOB_OWNED_TABLES]


def filtered(query: Any, filters: JobFilters, *, among: Sequence[str] | None = None) -> Any:
    """``query`` narrowed to the jobs ``filters`` selects (its ``states``, else ``among``,
    else any state): the one reading of a filter for listings, counts and bulk operations."""
    if "\x00" in (filters.queue or "") + (filters.task or "") + (filters.error_type or ""):
        # No stored name holds a NUL (PostgreSQL cannot even compare one): nothing matches.
        return query.where(false())
    states = among
    if filters.states:
        states = [JobState(s).value for s in filters.states]
    elif filters.states is not None and among is None:
        states = []  # a listing asked for no state at all: nothing matches
    if states is not None:
        query = query.where(_jobs.c.state.in_(list(states)))
    if filters.queue is not None:
        query = query.where(_jobs.c.queue == filters.queue)
    if filters.task is not None:
        query = query.where(_jobs.c.task == filters.task)
    if filters.created_after is not None:
        query = query.where(_jobs.c.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(_jobs.c.created_at < filters.created_before)
    if filters.error_type is not None:
        query = query.where(error_type_is(filters.error_type))
    return query


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
        unique_scope=data.get("unique_scope"),
        flow_key=data.get("flow_key"),
        graph_id=data.get("graph_id"),
        trace_context=_trace_context(data.get("trace_context")),
    )


def _trace_context(stored: Any) -> dict[str, str] | None:
    """The stored trace context if it is one (a hand-written row may hold anything)."""
    if not isinstance(stored, dict):
        return None
    return {str(k): str(v) for k, v in stored.items() if isinstance(v, str)} or None


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


def _erasing(job: Job) -> dict[str, Any]:
    """The values that erase ``job``'s secrets as it finishes (none if it holds none): a
    finished job's secrets are never needed again, so they are not kept until it is pruned."""
    return {"args": erased(job.args)} if has_secrets(job.args) else {}


def missing_tables_message(engine: Engine) -> str:
    where = engine.url.render_as_string(hide_password=True)
    database = engine.url.database
    if _dialects.sqlite_file(engine) is not None and database and not Path(database).is_absolute():
        where += f" (the file {Path(database).resolve()}: a relative path is read from the "
        where += "current directory)"
    return (
        f"the sqljobs tables are missing in {where}: create them with jobs.create_schema(), "
        "or `sqljobs create-schema module:jobs`, or run your migrations "
        "(`alembic upgrade head`, with sqljobs.metadata in env.py's target_metadata)"
    )


class StoreBase:
    """Reads and writes the sqljobs tables through one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.support = _dialects.support_for(engine)
        #: How workers hear of new jobs (see ``_pooling``); JobQueue(listen=, pooler=) sets it.
        self.listening = _pooling.Listening("probe" if self.support.listen_notify else "off")
        # The store's own transactions run at ``bookkeeping_isolation``. Not as an engine
        # option: on MySQL that sets the level on every checkout and resets it on every
        # return (four more round trips per transaction); one SET TRANSACTION, for the next
        # transaction only, costs one. PostgreSQL's default is READ COMMITTED already.
        level = self.support.bookkeeping_isolation
        self._set_isolation = (
            f"SET TRANSACTION ISOLATION LEVEL {level}"
            if level and engine.dialect.name != "postgresql"
            else None
        )
        self._bookkeeping_engine = engine
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
        variants = [(by_id, by_task) for by_id in (False, True) for by_task in (False, True)]
        self._claim_statements = {
            (by_id, by_task): _statements.claim_returning(
                skip_locked=skip_locked,
                by_id=by_id,
                by_task=by_task,
                skip_flush_wait=engine.dialect.name == "postgresql",
            )
            for by_id, by_task in variants
        }
        self._claimable = {  # for databases without UPDATE ... RETURNING
            (by_id, by_task): _statements.claimable(
                skip_locked=skip_locked, by_id=by_id, by_task=by_task, whole_rows=True
            )
            for by_id, by_task in variants
        }

    def __repr__(self) -> str:
        return f"JobStore({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- schema --------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the sqljobs tables and indexes if they do not exist."""
        _dialects.enable_sqlite_wal(self.engine)
        try:
            metadata.create_all(self.engine, checkfirst=True)
            with self.engine.begin() as conn:
                added = _upgrade.add_missing_columns(conn)
                indexes = _upgrade.add_missing_indexes(conn)
            if added:
                log.info("added the column(s) %s to the existing sqljobs tables", added)
            if indexes:
                log.info("added the index(es) %s to the existing sqljobs tables", indexes)
        except SQLAlchemyError as exc:
            raise StoreError(f"could not create the sqljobs tables: {exc}") from exc

    def drop_schema(self) -> None:
        metadata.drop_all(self.engine, checkfirst=True)

    def check_ready(self) -> None:
        """Check the server version and that the tables exist; raise a clear error if not."""
        path = _dialects.sqlite_file(self.engine)
        if path is not None and not path.exists():
            log.warning(
                "the SQLite database file %s does not exist, so SQLite creates an empty one; "
                "the URL's path %r is read from the current directory %s: run from the app's "
                "directory or give an absolute path",
                path,
                self.engine.url.database,
                Path.cwd(),
            )
        with self.engine.connect() as conn:
            _dialects.check_server(conn)
        _dialects.enable_sqlite_wal(self.engine)
        self.run(lambda conn: conn.execute(select(_jobs.c.id).limit(1)).all(), read_only=True)

    def probe_listeners(self, channel: str) -> None:
        """PostgreSQL: notify ``channel`` through the engine's pool (the listener's check that
        notifications reach it, see ``_pooling``)."""
        self.run(
            lambda conn: conn.execute(
                _statements.NOTIFY, {"p_channel": channel, "p_queue": "probe"}
            ),
            what="probe notifications",
            single_statement=True,
        )

    # -- transactions --------------------------------------------------------------------

    def run(
        self,
        work: Callable[[Connection], T],
        *,
        what: str = "job store",
        single_statement: bool = False,
        read_only: bool = False,
        repeatable: bool = True,
    ) -> T:
        """Run ``work`` in its own short transaction, retrying deadlocks and busy errors.

        ``single_statement`` work may run in autocommit where the database makes one statement
        atomic on its own (PostgreSQL): that saves the BEGIN and COMMIT round trips.
        ``read_only`` work does not take SQLite's write lock: in WAL mode a reader never waits
        for the writers (a job session may hold that lock for its whole run), so lookups,
        listings and counts answer at once.
        Work that is not ``repeatable`` (running it twice would write twice) is not run again
        when the connection drops after it was sent, since it may have committed: that raises
        :class:`OutcomeUnknown`. Errors the database answered (deadlock, busy) rolled it back
        and are retried as for any work.
        """
        binding = current_binding()
        if binding is not None:
            return self._run_bound(binding.connection, work, what)
        engine = self._autocommit_engine if single_statement else self._bookkeeping_engine
        for attempt in range(1, _TRANSIENT_RETRIES + 1):
            sent = False
            try:
                with engine.connect() as conn:
                    if self._set_isolation is not None and engine is self._bookkeeping_engine:
                        conn.exec_driver_sql(self._set_isolation)
                    if not read_only:
                        _dialects.begin_write(conn)
                    sent = True
                    result = work(conn)
                    conn.commit()
                    return result
            except DBAPIError as exc:
                if sent and not repeatable and exc.connection_invalidated:
                    raise self._outcome_unknown(what, exc) from exc
                if _dialects.is_transient(exc) and attempt < _TRANSIENT_RETRIES:
                    time.sleep(min(0.01 * 2**attempt, 0.5))
                    continue
                raise self.wrap(exc, what) from exc
            except SQLAlchemyError as exc:
                raise self.wrap(exc, what) from exc
            except self._raw_driver_errors as exc:
                if sent and not repeatable:
                    raise self._outcome_unknown(what, exc) from exc
                # A driver error SQLAlchemy did not wrap: e.g. setting the isolation level of
                # a pooled connection the server killed (MariaDB KILL). The pool has
                # discarded that connection; the next attempt gets a new one.
                if attempt < _TRANSIENT_RETRIES:
                    time.sleep(min(0.01 * 2**attempt, 0.5))
                    continue
                raise StoreError(f"{what} failed: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_bound(self, conn: Connection, work: Callable[[Connection], T], what: str) -> T:
        """``work`` in a savepoint of the caller's connection (see ``store/_bound.py``)."""
        if conn.dialect.name != self.engine.dialect.name:
            where = conn.engine.url.render_as_string(hide_password=True)
            raise ConfigurationError(
                f"the connection given to sqljobs is on {where} ({conn.dialect.name}), but the "
                f"queue's database is {self.engine.dialect.name}: point the queue at the test "
                "database first with jobs.rebind(TestSessionLocal)"
            )
        try:
            with conn.begin_nested():
                return work(conn)
        except SQLAlchemyError as exc:
            raise self.wrap(exc, what, conn.engine) from exc

    @staticmethod
    def _outcome_unknown(what: str, exc: Exception) -> OutcomeUnknown:
        lines = str(getattr(exc, "orig", exc)).strip().splitlines()
        cause = lines[0] if lines else type(exc).__name__
        return OutcomeUnknown(
            f"{what}: the connection to the database was lost after the write was sent, so "
            f"it may or may not have committed ({cause}). sqljobs does not repeat it, which "
            "could store it twice: look it up before writing it again, or give the task a "
            "Unique(...) key, whose enqueues sqljobs repeats safely on its own."
        )

    def wrap(self, exc: SQLAlchemyError, what: str, engine: Engine | None = None) -> StoreError:
        """The StoreError for ``exc``; missing tables name the database they are missing in
        (``engine``: where the statement ran, by default the store's)."""
        text = str(getattr(exc, "orig", exc)).strip()
        message = text.lower()
        missing_column = (
            "no such column" in message
            or "has no column" in message  # SQLite's INSERT
            or "unknown column" in message
            or ("column" in message and "does not exist" in message)
        )
        # A RETURNING list names its columns bare: "no such column: flow_key"; MariaDB's
        # INSERT names the column only: "Unknown column 'trace_context' in 'INSERT INTO'".
        named = ("sqljobs_", "flow_", "trace_context")
        if any(name in message for name in named) and missing_column:
            first_line = text.splitlines()[0] if text else type(exc).__name__
            return SchemaNotReady(
                f"{what} failed: the sqljobs tables lack a column this version of sqljobs "
                f"uses ({first_line}): run jobs.create_schema() or `sqljobs create-schema`, "
                "which add it, or your migrations (alembic revision --autogenerate; alembic "
                "upgrade head)"
            )
        if "prepared statement" in message and (
            "does not exist" in message or "already exists" in message
        ):
            return StoreError(
                f"{what} failed: {text.splitlines()[0] if text else exc}. Server-side prepared "
                "statements broke: is the engine behind PgBouncer in transaction mode? Pass "
                "JobQueue(..., pooler='transaction'), or create_engine(url, "
                "connect_args={'prepare_threshold': None})"
            )
        if "sqljobs_" in message and (
            "no such table" in message or "does not exist" in message or "doesn't exist" in message
        ):
            return SchemaNotReady(missing_tables_message(engine or self.engine))
        return StoreError(f"{what} failed: {exc}")

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

    def _rowcount_by_locked_ids(
        self,
        pick: Select[Any],
        change: Delete | Update,
        what: str,
        params: dict[str, Any],
        *,
        before: Sequence[Delete] = (),
    ) -> int:
        """Run ``change`` (filtered on ``p_ids``) on the ids ``pick`` locks, batch by batch
        (after ``before``, filtered the same way, in the same transaction).

        For InnoDB (see ``DialectSupport.index_locks_before_rows``): ``pick`` must lock with
        SKIP LOCKED and bind ``p_limit``; rows another transaction holds are left for later.
        """
        batch_size = 5000

        def work(conn: Connection) -> int:
            ids = conn.execute(pick, {**params, "p_limit": batch_size}).scalars().all()
            if not ids:
                return 0
            for statement in before:
                conn.execute(statement, {"p_ids": ids})
            outcome: Any = conn.execute(change, {"p_ids": ids})
            return int(outcome.rowcount)

        total = 0
        while (batch := self.run(work, what=what)) == batch_size:
            total += batch
        return total + batch

    def _delete_found(
        self, find: Select[Any], remove: Delete, what: str, params: dict[str, Any] | None = None
    ) -> int:
        """Delete, batch by batch, the rows whose keys ``find`` reads; returns how many went.

        ``find`` is a plain read: it locks nothing, so a transaction finishing a job never
        waits for it, nor it for them. (One ``DELETE ... WHERE NOT EXISTS (SELECT ... FROM
        sqljobs_jobs ...)`` share-locks on InnoDB every job row its subquery finds, for the
        whole scan: a finishing job that holds one edge and waits for such a row deadlocks.)
        ``remove`` deletes by ``p_keys`` and re-checks the condition, which by then matches
        no job row, so it locks none either. ``find`` must bind ``p_limit``.
        """
        batch_size = 1000
        values = dict(params or {})

        def work(conn: Connection) -> tuple[int, int]:
            keys = conn.execute(find, {**values, "p_limit": batch_size}).scalars().all()
            if not keys:
                return 0, 0
            outcome: Any = conn.execute(remove, {**values, "p_keys": list(keys)})
            return len(keys), int(outcome.rowcount)

        total = 0
        while True:
            found, deleted = self.run(work, what=what)
            total += deleted
            if found < batch_size:
                return total
