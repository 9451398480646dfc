"""``task.configure(...)``, arguments by position, and the three ways to register a task:
what the job row would hold (``prepare``), with no database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import Session as SQLModelSession

from sqljobs import JobContext, JobQueue
from sqljobs.exceptions import InvalidArguments

AT = datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_configure_sets_options_and_a_second_configure_adds_or_replaces(
    offline_jobs: JobQueue,
) -> None:
    @offline_jobs.task(queue="mail", priority=5)
    def send(user_id: int) -> None: ...

    configured = send.configure(run_at=AT, priority=1)
    job = configured.prepare(user_id=7)
    assert (job.args, job.queue, job.priority, job.run_at) == ({"user_id": 7}, "mail", 1, AT)
    again = configured.configure(priority=2, queue="other").prepare(user_id=8)
    assert (again.queue, again.priority, again.run_at) == ("other", 2, AT)
    # The first stays as it was: configure returns a new object.
    assert configured.prepare(user_id=9).priority == 1


def test_arguments_by_position_are_named_after_the_parameters_after_session_and_ctx(
    offline_jobs: JobQueue,
) -> None:
    @offline_jobs.task
    def report(session: Session, ctx: JobContext, year: int, month: int = 1) -> None: ...

    assert report.as_keywords((2026, 12), {}) == {"year": 2026, "month": 12}
    assert report.configure(delay=timedelta(0)).prepare(2026).args == {"year": 2026}
    with pytest.raises(TypeError, match=r"takes 2 positional argument\(s\) \(year, month\)"):
        report.as_keywords((1, 2, 3), {})
    with pytest.raises(TypeError, match=r"\['year'\] by position and by name"):
        report.as_keywords((2026,), {"year": 2027})


def test_a_keyword_only_parameter_cannot_be_given_by_position(offline_jobs: JobQueue) -> None:
    @offline_jobs.task
    def notify(*, user_id: int) -> None: ...

    with pytest.raises(TypeError, match=r"takes 0 positional argument\(s\) \(none\)"):
        notify.as_keywords((1,), {})


def test_jobs_task_registers_bare_with_options_and_called_with_the_function(
    offline_jobs: JobQueue,
) -> None:
    @offline_jobs.task
    def bare() -> None: ...

    @offline_jobs.task(name="with.options", queue="q")
    def optioned() -> None: ...

    def direct() -> None: ...

    registered = offline_jobs.task(direct, name="direct.call", max_attempts=2)
    layered = offline_jobs.task(queue="first")(priority=4)(name="layered")(direct)
    assert offline_jobs.registry["with.options"] is optioned and optioned.queue == "q"
    assert offline_jobs.registry["direct.call"] is registered and registered.max_attempts == 2
    assert (layered.queue, layered.priority) == ("first", 4)
    assert bare.name in offline_jobs.registry
    assert bare.func.__name__ == "bare"


@pytest.mark.parametrize(
    ("annotation", "injected_as"),
    [
        (Session, "session"),
        (SQLModelSession, "session"),
        (AsyncSession, "session"),
        (JobContext, "ctx"),
    ],
)
def test_a_session_or_context_parameter_under_another_name_is_refused_at_registration(
    offline_jobs: JobQueue, annotation: type, injected_as: str
) -> None:
    """sqljobs injects by name; type checkers strip the first parameters by type: a Session
    named ``db`` would be typed away yet required at run time. Refused, saying the fix."""

    def task(db: Any, user_id: int) -> None: ...

    task.__annotations__["db"] = annotation
    with pytest.raises(
        InvalidArguments, match=rf"parameter 'db' is annotated .*rename 'db' to '{injected_as}'"
    ):
        offline_jobs.task(task)
    assert task.__qualname__ not in {t.func.__qualname__ for t in offline_jobs.registry.values()}
