"""The hottest bookkeeping statements, compiled once per dialect and sent as driver SQL.

Per job, sqljobs itself sends an enqueue, a start and a completion (and a share of a claim).
Executed as Core statements, each call walks the statement for its cache key, looks the
compiled form up and builds its parameters: 20-30 us of client CPU per call on PostgreSQL
(an enqueue 270 -> 250 us, a start 290 -> 266 us, measured). :class:`Precompiled` does that
once per dialect and sends the compiled string with ``exec_driver_sql``, which keeps
SQLAlchemy's connection handling, its error wrapping (disconnects, deadlocks) and its cursor
events (tracing, statement recorders); only the per-call compilation is skipped. The dialect
layer still writes the SQL, so every database gets its own.

Only statements without expanding (``IN``) or literal-execute parameters qualify.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Connection, CursorResult, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import Executable


class _Compiled:
    """One statement's SQL for one dialect, with its parameters' processors."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler) or compiled.post_compile_params:
            raise ValueError(f"not precompilable (expanding parameters): {statement}")
        self.compiled = compiled
        self.sql = compiled.string
        self.positions = list(compiled.positiontup or []) if compiled.positional else None
        # By the names the SQL renders, the keys construct_params() returns (``binds`` also
        # holds anonymous parameters under their unrendered keys).
        processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        self.processors = processors

    def parameters(self, params: Mapping[str, Any]) -> Any:
        values = self.compiled.construct_params(dict(params))
        for name, processor in self.processors.items():
            values[name] = processor(values[name])
        if self.positions is None:
            return values
        return tuple(values[name] for name in self.positions)


class Precompiled:
    """``statement`` compiled once for each dialect it runs on (a queue's engine, or the
    sync side of an async task's engine), then sent with ``exec_driver_sql``."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        #: Weak: a disposed engine's dialect (tests make thousands) takes its SQL with it.
        self._by_dialect: weakref.WeakKeyDictionary[Dialect, _Compiled] = (
            weakref.WeakKeyDictionary()
        )

    def execute(
        self, executor: Session | Connection, params: Mapping[str, Any]
    ) -> CursorResult[Any]:
        """Run on ``executor``: a Connection, or a Session (its pending ORM writes are flushed
        first if it autoflushes, as ``Session.execute`` would, and the statement runs on the
        connection of its transaction that ``Session.execute`` would use)."""
        if isinstance(executor, Session):
            if executor.autoflush:
                executor.flush()
            conn = executor.connection(bind_arguments={"clause": self.statement})
        else:
            conn = executor
        compiled = self._for(conn.dialect)
        return conn.exec_driver_sql(compiled.sql, compiled.parameters(params))

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect)
        if compiled is None:
            compiled = self._by_dialect[dialect] = _Compiled(self.statement, dialect)
        return compiled
