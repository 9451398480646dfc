"""Fixtures of the reliability suite (see harness.py and docs/reliability.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import Workers, load_app


@pytest.fixture
def rel_app(db_url: str, engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``tests.reliability.app`` bound to this test's fresh database."""
    monkeypatch.setenv("SQLJOBS_TEST_DATABASE_URL", db_url)
    module = load_app(db_url)
    yield module
    module.jobs.close()
    module.engine.dispose()


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(db_url, tmp_path)
    yield started
    started.close()
