"""How ``sqljobs ... --app X`` finds the JobQueue, and what it says when it cannot."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sqljobs import JobQueue, SqljobsError
from sqljobs.cli import _build_app, load_queue

QUEUE = (
    "from sqlalchemy import create_engine\n"
    "from sqlalchemy.orm import sessionmaker\n"
    "from sqljobs import JobQueue\n"
    "{names} = JobQueue(sessionmaker(create_engine('sqlite://')))\n"
)
MODULES = {
    "shop/__init__.py": "",
    "shop/jobs.py": QUEUE.format(names="jobs"),
    "shop/tasks.py": QUEUE.format(names="queue") + "from shop.jobs import jobs as imported\n",
    "shop/two.py": QUEUE.format(names="mail = reports"),
    "shop/none.py": "x = 1\n",
    "shop/broken.py": "x = 1\nraise RuntimeError('DATABASE_URL is not set')\n",
    "shop/needs_dep.py": "import no_such_dependency\n",
}


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name, text in MODULES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in [m for m in sys.modules if m == "shop" or m.startswith("shop.")]:
        del sys.modules[module]


def test_module_attribute_and_dotted_attribute_name_the_queue(app_dir: Path) -> None:
    import shop.jobs  # type: ignore[import-not-found]  # written by the fixture

    assert load_queue("shop.jobs:jobs") is shop.jobs.jobs
    assert load_queue("shop.jobs.jobs") is shop.jobs.jobs


def test_a_bare_module_with_one_queue_is_enough(app_dir: Path) -> None:
    import shop.jobs

    assert load_queue("shop.jobs") is shop.jobs.jobs


def test_a_bare_module_with_no_or_several_queues_says_which_to_name(app_dir: Path) -> None:
    with pytest.raises(
        SqljobsError, match=re.escape("holds no sqljobs.JobQueue; pass module:attribute")
    ):
        load_queue("shop.none")
    with pytest.raises(
        SqljobsError, match=re.escape("several JobQueues; pass one of shop.two:mail, ")
    ):
        load_queue("shop.two")
    with pytest.raises(
        SqljobsError, match=re.escape("several JobQueues; pass one of shop.tasks:imported")
    ):
        load_queue("shop.tasks")


def test_a_missing_attribute_lists_the_queues_the_module_has(app_dir: Path) -> None:
    with pytest.raises(SqljobsError, match="has no attribute 'queue'; it has jobs"):
        load_queue("shop.jobs:queue")


def test_a_missing_module_says_where_it_looked(app_dir: Path) -> None:
    with pytest.raises(SqljobsError, match=f"no module named 'myapp' in {app_dir}") as error:
        load_queue("myapp.jobs")
    assert "PYTHONPATH" in str(error.value)


def test_a_module_that_raises_on_import_is_reported_in_one_line(app_dir: Path) -> None:
    with pytest.raises(SqljobsError) as error:
        load_queue("shop.broken:jobs")
    message = str(error.value)
    assert "importing 'shop.broken' raised RuntimeError: DATABASE_URL is not set" in message
    assert f"{app_dir / 'shop' / 'broken.py'}:2" in message
    with pytest.raises(SqljobsError, match="raised ModuleNotFoundError: No module named 'no_such"):
        load_queue("shop.needs_dep")


def test_the_cli_exits_2_with_a_short_message_for_a_module_that_raises(app_dir: Path) -> None:
    result = CliRunner().invoke(_build_app(), ["status", "--app", "shop.broken"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: importing 'shop.broken' raised RuntimeError")
    assert len(result.stderr.strip().splitlines()) == 1
    assert isinstance(load_queue("shop.jobs"), JobQueue)
