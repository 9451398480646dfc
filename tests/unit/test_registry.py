from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import ConfigurationError, JobQueue, TaskNotRegistered
from sqljobs.exceptions import TaskAlreadyRegistered


@pytest.fixture
def jobs(offline_jobs: JobQueue) -> JobQueue:
    return offline_jobs


def test_task_options_and_session_detection(jobs: JobQueue) -> None:
    @jobs.task(queue="mail", priority=-1, max_attempts=3, timeout=5)
    def send(session: Session, user_id: int) -> None:
        pass

    @jobs.task
    def plain(x: int) -> int:
        return x * 2

    assert send.name.endswith("<locals>.send")
    assert (send.queue, send.priority, send.max_attempts, send.timeout) == ("mail", -1, 3, 5.0)
    assert send.wants_session and not plain.wants_session
    assert plain(4) == 8
    assert jobs.registry.queues() == ["default", "mail"]


def test_prepare_computes_run_at_from_delay(jobs: JobQueue) -> None:
    @jobs.task
    def t(x: int) -> None:
        pass

    before = datetime.now(timezone.utc)
    job = t.prepare(x=1, delay=timedelta(minutes=5))
    assert job.run_at is not None and job.run_at - before >= timedelta(minutes=5)
    with pytest.raises(ValueError, match="either delay= or run_at="):
        t.prepare(x=1, delay=1, run_at=before)
    with pytest.raises(ValueError, match="timezone-aware"):
        t.prepare(x=1, run_at=datetime(2030, 1, 1))


def test_parameters_named_like_enqueue_options_are_refused(jobs: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="clash with enqueue options"):

        @jobs.task
        def bad(delay: int) -> None:
            pass


def test_duplicate_names_are_refused(jobs: JobQueue) -> None:
    @jobs.task(name="same")
    def one() -> None:
        pass

    with pytest.raises(TaskAlreadyRegistered, match="'same' is already registered; pass name="):

        @jobs.task(name="same")
        def two() -> None:
            pass


def test_unknown_task_lookup_says_what_to_do(jobs: JobQueue) -> None:
    with pytest.raises(TaskNotRegistered, match="import the module"):
        jobs.registry["nope"]


def test_async_task_with_session_needs_an_async_factory(jobs: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="async_session_factory"):

        @jobs.task
        async def needs(session: object) -> None:
            await asyncio.sleep(0)


def test_jobqueue_needs_a_bound_sessionmaker() -> None:
    with pytest.raises(ConfigurationError, match="not bound to an Engine"):
        JobQueue(sessionmaker())
    with pytest.raises(ConfigurationError, match="sessionmaker"):
        JobQueue(object())  # type: ignore[arg-type]


def test_unknown_task_lookup_names_registered_tasks_with_close_names(jobs: JobQueue) -> None:
    @jobs.task(name="billing.send_invoice")
    def send_invoice() -> None: ...

    with pytest.raises(TaskNotRegistered, match=re.escape("similar names: 'billing.send_invoice'")):
        jobs.registry["billing.send_invoices"]


def test_a_job_of_a_main_script_task_says_to_name_the_task(jobs: JobQueue) -> None:
    with pytest.raises(TaskNotRegistered, match=r"script run as __main__: give the task .*name="):
        jobs.registry["__main__.mark_done"]


SCRIPT = """
import logging
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from sqljobs import JobQueue

logging.basicConfig(format="%(levelname)s %(message)s")
jobs = JobQueue(sessionmaker(create_engine("sqlite://")))

@jobs.task
def mark_done(record_id: int) -> None: ...

@jobs.task(name="explicit.name")
def named() -> None: ...

print(sorted(jobs.registry))
"""


@pytest.mark.parametrize("how", ["script", "module"])
def test_a_task_of_a_script_run_as_main_gets_the_name_a_worker_imports_it_by(
    tmp_path: Path, how: str
) -> None:
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(SCRIPT)
    command = (
        [sys.executable, str(package / "tasks.py")]
        if how == "script"
        else [sys.executable, "-m", "myapp.tasks"]
    )
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = "tasks.mark_done" if how == "script" else "myapp.tasks.mark_done"
    assert done.stdout.strip() == repr(sorted(["explicit.name", expected]))
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1
    assert "mark_done is defined in a script run as __main__" in warnings[0]
    assert f"stored as '{expected}'" in warnings[0]
