from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from sqljobs import ConfigurationError
from sqljobs.store._dialects import check_mysql_version, pool_capacity, support_for


@pytest.mark.parametrize(
    "version", ["10.5.23-MariaDB-1:10.5.23+maria~deb11", "5.7.44", "8.0.0", "10.3.39-MariaDB"]
)
def test_servers_without_skip_locked_are_refused_with_the_version_to_upgrade_to(
    version: str,
) -> None:
    with pytest.raises(
        ConfigurationError, match=r"SKIP LOCKED.*upgrade to (MariaDB 10\.6|MySQL 8\.0\.1)"
    ):
        check_mysql_version(version)


@pytest.mark.parametrize("version", ["10.11.19-MariaDB-0+deb12u1", "10.6.0-MariaDB", "8.0.36"])
def test_recent_servers_pass(version: str) -> None:
    check_mysql_version(version)


def test_capabilities_per_dialect() -> None:
    sqlite = support_for(create_engine("sqlite://"))
    assert sqlite.single_writer and not sqlite.skip_locked
    pg = support_for(create_engine("postgresql+psycopg://u@localhost/db"))
    assert pg.skip_locked and pg.listen_notify and pg.statement_timeout
    mysql = support_for(create_engine("mysql+pymysql://u@localhost/db"))
    assert mysql.skip_locked and not mysql.update_returning
    other = create_engine("sqlite://")
    other.dialect.name = "firebird"  # no driver needed to stand for an unsupported database
    with pytest.raises(ConfigurationError, match="supports SQLite, PostgreSQL and MariaDB"):
        support_for(other)


def test_pool_capacity() -> None:
    engine = create_engine("postgresql+psycopg://u@localhost/db", pool_size=3, max_overflow=2)
    assert pool_capacity(engine) == 5
    assert (
        pool_capacity(create_engine("postgresql+psycopg://u@localhost/db", max_overflow=-1)) is None
    )
