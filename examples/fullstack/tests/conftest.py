"""Fixtures as in the template's tests: the database migrated with Alembic, and a client that
runs the app's lifespan (so the in-process sqljobs worker runs the jobs).

The database is the one the settings name (``DATABASE_URL``): point it at a database for
tests. tests/e2e/test_fullstack_example.py runs these tests on a fresh SQLite, PostgreSQL and
MariaDB database each.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient

from examples.fullstack.app.core.db import jobs
from examples.fullstack.app.main import app

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


@pytest.fixture(scope="session")
def alembic_config() -> Config:
    return Config(str(ALEMBIC_INI))


@pytest.fixture(scope="session", autouse=True)
def database(alembic_config: Config) -> Iterator[None]:
    command.upgrade(alembic_config, "head")
    yield
    jobs.close()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(app) as c:  # runs the lifespan: the worker starts, and drains at the end
        yield c
