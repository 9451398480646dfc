"""examples/asyncapp passes its own pytest-asyncio suite (engine swapped to a test database in
its conftest with ``jobs.rebind``, one rolled-back transaction per test, ``jobs_inline`` and
``await jobs_adrain()``, a pooled async engine) on a fresh database of each kind and async
driver, as its README says to run it, and never touches the app's own database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from sqljobs.aio import async_url
from tests import databases

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TESTS = ROOT / "examples" / "asyncapp" / "tests"
KINDS = {
    "sqlite-aiosqlite": ("sqlite", "aiosqlite"),
    "postgresql-asyncpg": ("postgresql", "asyncpg"),
    "postgresql-psycopg_async": ("postgresql", "psycopg_async"),
    "mariadb-aiomysql": ("mariadb", "aiomysql"),
}


@pytest.fixture(params=list(KINDS))
def fresh_test_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind, driver = KINDS[request.param]
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'asyncapp-test.db'}"
        return
    try:
        url = databases.create_private_database(kind)
    except OperationalError as exc:
        message = f"{kind} is unreachable at {databases.SERVER_URLS[kind]}: {exc}"
        if databases.IN_CI:
            pytest.fail(f"CI requires every database: {message}")
        pytest.skip(message)
    try:
        yield async_url(url.render_as_string(hide_password=False), driver=driver)
    finally:
        databases.drop_private_database(kind, url)


def test_the_async_example_passes_its_own_tests(
    fresh_test_database_url: str, tmp_path: Path
) -> None:
    app_database = tmp_path / "asyncapp.db"  # what the app builds its engine on at import
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE_TESTS)],
        cwd=ROOT,
        env={
            **env,
            "DATABASE_URL": f"sqlite+aiosqlite:///{app_database}",
            "TEST_DATABASE_URL": fresh_test_database_url,
        },
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "5 passed in" in ran.stdout and "skipped" not in ran.stdout, ran.stdout
    assert not app_database.exists()  # the conftest's swap left the app's database alone
