"""Connection poolers in transaction mode (PgBouncer ``pool_mode = transaction``): what sqljobs
changes when the engine's connections are shared between clients transaction by transaction.

Two PostgreSQL features assume a session that lasts: LISTEN (notifications reach a client only
while a server connection is assigned to it, which between transactions none is) and
psycopg 3's server-side prepared statements (made after ``prepare_threshold`` = 5 executions
of one statement on a connection, then used on whichever server connection the next
transaction gets, where they do not exist). So:

- ``pooler="transaction"`` turns prepared statements off on the engine's connections
  (``prepare_threshold = None``) and does not LISTEN through it;
- ``listen=`` a URL or Engine LISTENs on a direct connection to the server instead, while
  everything else goes through the pooler; ``listen=False`` polls only;
- with the default ``listen=True`` and no pooler declared, the listener first checks that a
  notification sent on another connection reaches it (on a private probe channel); when it
  does not, the worker says so and polls (:data:`sqljobs.events.WORKER_POLLING`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from ..exceptions import ConfigurationError

log = logging.getLogger("sqljobs.store")

Pooler = Literal["transaction"]
#: Seconds the listener waits for its probe notification before it concludes that
#: notifications do not reach it.
PROBE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Listening:
    """How workers learn of new jobs on PostgreSQL. ``mode``: ``probe`` (LISTEN on the
    engine's connections after checking notifications arrive), ``direct`` (LISTEN on
    ``engine``, a direct connection), ``off`` (poll only)."""

    mode: Literal["probe", "direct", "off"]
    engine: Engine | None = None


def configure(engine: Engine, *, pooler: str | None, listen: bool | str | Engine) -> Listening:
    """Check ``pooler``/``listen`` for ``engine`` and prepare it; return the listening plan."""
    if pooler not in (None, "transaction"):
        raise ConfigurationError(
            f"pooler must be None or 'transaction' (PgBouncer pool_mode = transaction), "
            f"got {pooler!r}"
        )
    postgres = engine.dialect.name == "postgresql"
    if pooler is not None and not postgres:
        raise ConfigurationError(
            f"pooler='transaction' is for PostgreSQL behind PgBouncer; this engine is "
            f"{engine.dialect.name}: leave pooler unset"
        )
    if pooler is not None:
        disable_prepared_statements(engine)
    if isinstance(listen, bool):
        if not listen or not postgres:
            return Listening("off")
        return Listening("off") if pooler is not None else Listening("probe")
    if not postgres:
        raise ConfigurationError(
            "listen= a URL or Engine is for PostgreSQL (LISTEN/NOTIFY); other databases poll"
        )
    direct = create_engine(listen, poolclass=NullPool) if isinstance(listen, str) else listen
    if not isinstance(direct, Engine) or direct.dialect.name != "postgresql":
        raise ConfigurationError(
            "listen= takes True, False, or a direct PostgreSQL URL/Engine (not through the "
            f"pooler) for the LISTEN connection, got {listen!r}"
        )
    return Listening("direct", direct)


def disable_prepared_statements(engine: Engine) -> None:
    """psycopg 3: no server-side prepared statements on this engine's new connections (they
    would be missing on the next transaction's server connection behind the pooler)."""
    if engine.dialect.driver != "psycopg" or getattr(engine, "_sqljobs_unprepared", False):
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.prepare_threshold = None

    engine._sqljobs_unprepared = True  # type: ignore[attr-defined]
