"""Where the test databases live, and a private database per test run on each server.

PostgreSQL and MariaDB come from SQLJOBS_TEST_PG_URL / SQLJOBS_TEST_MARIADB_URL (defaults:
the machine's local servers). Each pytest run creates its own database on each server, so two
runs on one machine never see each other's jobs.
"""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

PG_URL = os.environ.get("SQLJOBS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("SQLJOBS_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
SERVER_URLS = {"postgresql": PG_URL, "mariadb": MARIADB_URL}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def create_private_database(kind: str) -> URL:
    """Create a fresh database on the ``kind`` server; return its URL."""
    base = make_url(SERVER_URLS[kind])
    name = f"sqljobs_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", connect_args=_timeout(kind))
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
    return base.set(database=name)


def drop_private_database(kind: str, url: URL) -> None:
    base = make_url(SERVER_URLS[kind])
    admin = create_engine(base, isolation_level="AUTOCOMMIT", connect_args=_timeout(kind))
    try:
        with admin.connect() as conn:
            if kind == "postgresql":
                conn.execute(text(f"DROP DATABASE IF EXISTS {url.database} WITH (FORCE)"))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS {url.database}"))
    finally:
        admin.dispose()


def _timeout(kind: str) -> dict[str, int]:
    return {"connect_timeout": 5}
