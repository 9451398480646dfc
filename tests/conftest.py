"""Fixtures: an engine on each database (SQLite always; PostgreSQL and MariaDB from the
machine's servers), a fresh schema per test, and a JobQueue on it.

Locally an unreachable PostgreSQL or MariaDB skips its tests; under CI=true it fails them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, Integer, String, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import sqljobs
from tests import capabilities, databases

DIALECTS = list(capabilities.DIALECTS)
#: The async drivers each database's async tests run with (the ``async_driver`` fixture).
ASYNC_DRIVERS = {
    "sqlite": ["aiosqlite"],
    "postgresql": ["asyncpg", "psycopg_async"],
    "mariadb": ["aiomysql"],
}


def _dialects_to_run() -> list[str]:
    """``SQLJOBS_TEST_DIALECTS=sqlite`` (comma-separated) runs the database tests on those
    databases only, for a quick local pass; CI always runs every database."""
    raw = os.environ.get("SQLJOBS_TEST_DIALECTS", "").strip()
    if not raw:
        return list(DIALECTS)
    chosen = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(DIALECTS))
    if unknown:
        raise pytest.UsageError(
            f"SQLJOBS_TEST_DIALECTS: unknown database(s) {unknown}; choose from {DIALECTS}"
        )
    if databases.IN_CI:
        raise pytest.UsageError("CI runs every database: unset SQLJOBS_TEST_DIALECTS")
    return chosen


#: Set from the environment when pytest starts (pytest_configure).
DIALECTS_TO_RUN = list(DIALECTS)


def pytest_configure(config: pytest.Config) -> None:
    global DIALECTS_TO_RUN
    DIALECTS_TO_RUN = _dialects_to_run()


class Base(DeclarativeBase):
    pass


class Counter(Base):
    """A row jobs increment, to count effects exactly."""

    __tablename__ = "test_counters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class Record(Base):
    __tablename__ = "test_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(50), default="new")


_server_urls: dict[str, URL | BaseException] = {}


def server_database(kind: str) -> URL:
    """This run's private database on ``kind``; skip (locally) or fail (CI) if unreachable."""
    if kind not in _server_urls:
        try:
            _server_urls[kind] = databases.create_private_database(kind)
        except OperationalError as exc:
            _server_urls[kind] = exc
    found = _server_urls[kind]
    if isinstance(found, BaseException):
        message = f"{kind} is unreachable at {databases.SERVER_URLS[kind]}: {found}"
        if databases.IN_CI:
            pytest.fail(f"CI requires every database: {message}")
        pytest.skip(message)
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for kind, url in _server_urls.items():
        if isinstance(url, URL):
            databases.drop_private_database(kind, url)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each database test once per dialect, or on those its markers allow:
    ``needs(capability, ...)`` (declared in tests/capabilities.py) or
    ``dialects(name, ..., reason="why the others are left out")``."""
    if "dialect" not in metafunc.fixturenames:
        return
    chosen = list(DIALECTS)
    for marker in metafunc.definition.iter_markers("needs"):
        for name in marker.args:
            chosen = [d for d in chosen if capabilities.has(name, d)]
    for marker in metafunc.definition.iter_markers("dialects"):
        unknown = set(marker.args) - set(DIALECTS)
        if unknown:
            pytest.fail(f"{metafunc.definition.nodeid}: unknown dialect(s) {sorted(unknown)}")
        if set(marker.args) != set(DIALECTS) and not marker.kwargs.get("reason"):
            pytest.fail(
                f"{metafunc.definition.nodeid}: @pytest.mark.dialects{marker.args} leaves "
                "databases out without a reason=; say why, or declare the difference in "
                "tests/capabilities.py and use @pytest.mark.needs(...)"
            )
        chosen = [d for d in chosen if d in marker.args]
    if not chosen:
        pytest.fail(f"{metafunc.definition.nodeid}: its markers leave no database to run on")
    # An empty list (every database it runs on left out by SQLJOBS_TEST_DIALECTS) is
    # reported by pytest as a skip.
    chosen = [d for d in chosen if d in DIALECTS_TO_RUN]
    if "async_driver" in metafunc.fixturenames:
        # Async tests run once per async driver of each database (PostgreSQL has two).
        pairs = [(d, driver) for d in chosen for driver in ASYNC_DRIVERS[d]]
        metafunc.parametrize(("dialect", "async_driver"), pairs, ids=[f"{d}-{a}" for d, a in pairs])
        return
    metafunc.parametrize("dialect", chosen)


@pytest.fixture
def db_url(dialect: str, tmp_path: Any) -> str:
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return server_database(dialect).render_as_string(hide_password=False)


@pytest.fixture
def make_engine(db_url: str) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def make(**options: Any) -> Engine:
        options.setdefault("pool_size", 20)
        engine = create_engine(db_url, **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    engine = make_engine()
    sqljobs.metadata.drop_all(engine)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    return engine


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine)


@pytest.fixture
def jobs(session_factory: sessionmaker[Any]) -> Iterator[sqljobs.JobQueue]:
    queue = sqljobs.JobQueue(session_factory)
    queue.create_schema()
    yield queue
    queue.close()


@pytest.fixture
def offline_jobs() -> Iterator[sqljobs.JobQueue]:
    """A queue for tests of configuration and refusals that reach no database: it runs once,
    not once per dialect (its in-memory SQLite has no tables)."""
    queue = sqljobs.JobQueue(sessionmaker(create_engine("sqlite://")))
    yield queue
    queue.close()


@pytest.fixture(autouse=True)
def _quiet_sqljobs_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sqljobs")


#: Directories whose tests start processes, servers or browsers, or run long scenarios: the
#: ``slow`` ones, left out of the fast local subset ``pytest -m "not slow"``.
SLOW_DIRECTORIES = ("reliability", "e2e", "acceptance", "browser", "packaging")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.parts
        if "tests" in parts and parts[parts.index("tests") + 1] in SLOW_DIRECTORIES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def _pgbouncer() -> Iterator[Any]:
    """This pytest process's PgBouncer (transaction pooling) in front of the test PostgreSQL;
    None when SQLJOBS_TEST_PGBOUNCER_URL names one that runs already."""
    from tests import pgbouncer

    if pgbouncer.EXTERNAL:
        yield None
        return
    if not os.path.exists(pgbouncer.BINARY):
        message = "pgbouncer is not installed (scripts/test installs Debian's package)"
        if databases.IN_CI:
            pytest.fail(f"CI requires pgbouncer: {message}")
        pytest.skip(message)
    bouncer = pgbouncer.PgBouncer()
    bouncer.start()
    yield bouncer
    bouncer.stop()


@pytest.fixture
def pgbouncer_url(dialect: str, db_url: str, _pgbouncer: Any) -> str:
    """This test's PostgreSQL database through PgBouncer in transaction pooling mode."""
    from tests import pgbouncer

    assert dialect == "postgresql", "pgbouncer_url needs @pytest.mark.dialects('postgresql')"
    return _pgbouncer.url(db_url) if _pgbouncer is not None else pgbouncer.external_url(db_url)
