"""The capability table tests read (tests/capabilities.py) agrees with what the store
detects for each database, and an undeclared capability fails the test that asks for it."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from sqljobs.store import support_for
from tests import capabilities

URLS = {
    "sqlite": "sqlite:///declared.db",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1/test",
}


@pytest.mark.parametrize("database", capabilities.DIALECTS)
def test_the_declared_capabilities_match_what_the_store_detects(database: str) -> None:
    dialect = database
    engine = create_engine(URLS[dialect])  # not connected: detection reads the dialect only
    support = support_for(engine)
    detected = {
        "concurrent_writers": not support.single_writer,
        "listen_notify": support.listen_notify,
        "statement_timeout": support.statement_timeout,
        "row_locks_skip_locked": support.skip_locked,
        "network_connection": dialect != "sqlite",
        "file_database": dialect == "sqlite",
        "server_checks_json": dialect != "sqlite",
        "stores_unchecked_json": dialect == "sqlite",
    }
    assert set(detected) == set(capabilities.CAPABILITIES)
    declared = {name: capabilities.has(name, dialect) for name in capabilities.CAPABILITIES}
    assert declared == detected


def test_an_undeclared_capability_fails_the_test_that_asks_for_it() -> None:
    with pytest.raises(AssertionError, match=r"not declared in tests/capabilities\.py"):
        capabilities.has("time_travel", "sqlite")
