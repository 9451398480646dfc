"""examples/fullstack passes its own tests (Alembic upgrade, TestClient with the lifespan,
e-mail jobs exactly once) on a fresh database of each kind, as its README says to run them:
``DATABASE_URL=... python -m pytest examples/fullstack/tests``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from tests import databases

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TESTS = ROOT / "examples" / "fullstack" / "tests"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'fullstack.db'}"
        return
    try:
        url = databases.create_private_database(kind)
    except OperationalError as exc:
        message = f"{kind} is unreachable at {databases.SERVER_URLS[kind]}: {exc}"
        if databases.IN_CI:
            pytest.fail(f"CI requires every database: {message}")
        pytest.skip(message)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        databases.drop_private_database(kind, url)


def test_the_fullstack_example_passes_its_own_tests(fresh_database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE_TESTS)],
        cwd=ROOT,
        env={**env, "DATABASE_URL": fresh_database_url},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert " passed" in ran.stdout and "skipped" not in ran.stdout, ran.stdout
