"""pytest fixtures for testing an app that uses sqljobs; pytest loads them by itself once
sqljobs is installed (entry point ``pytest11``). Only this module imports pytest.

Tell them the app's queue with one fixture in ``conftest.py``::

    @pytest.fixture
    def sqljobs_queue():
        return app.jobs

A test that runs in one transaction rolled back afterwards (the rollback-per-test pattern)
also tells them its session, sync or async, so that they read and run jobs in it::

    @pytest.fixture
    def sqljobs_using(db_session):
        return db_session

Then ask for what a test needs:

- ``jobs_reset``: the queue, emptied of every job before the test;
- ``jobs_inline``: the queue in inline mode for the test (see :func:`sqljobs.testing.inline`:
  every job runs in the committing thread and its errors are raised from ``commit()``);
- ``jobs_captured``: a :class:`sqljobs.testing.Captured` of the jobs committed during the test;
- ``jobs_drain``: a function running the jobs committed during the test (and theirs);
- ``jobs_adrain``: the same for ``async def`` tests: ``await jobs_adrain()`` runs async tasks
  on the test's event loop;
- ``jobs_no_worker``: apps started during the test run no in-process worker for the queue
  (ask for it before the fixture that enters ``TestClient(app)``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .jobqueue import DrainResult, JobQueue
    from .testing import Captured


@pytest.fixture
def sqljobs_queue() -> JobQueue:
    """The app's JobQueue: override this fixture in your conftest.py."""
    pytest.fail(
        "the sqljobs fixtures need the app's queue: define it in conftest.py as\n\n"
        "    @pytest.fixture\n    def sqljobs_queue():\n        return app.jobs\n",
        pytrace=False,
    )


@pytest.fixture
def sqljobs_using() -> Any:
    """The session or connection of the test's transaction (sync or async), for tests that
    roll back one outer transaction each: override it in conftest.py. None (the default):
    the fixtures use the queue's own short transactions."""
    return None


@pytest.fixture
def jobs_reset(sqljobs_queue: JobQueue) -> JobQueue:
    """The queue, emptied of every job (whatever its state) before the test."""
    from .testing import reset

    reset(sqljobs_queue)
    return sqljobs_queue


@pytest.fixture
def jobs_inline(sqljobs_queue: JobQueue, sqljobs_using: Any) -> Iterator[JobQueue]:
    """The queue in inline mode for the test; task errors are raised from ``commit()``."""
    from .testing import inline

    with inline(sqljobs_queue, sqljobs_using) as queue:
        yield queue


@pytest.fixture
def jobs_captured(sqljobs_queue: JobQueue) -> Iterator[Captured]:
    """The jobs committed during the test (pass it to ``testing.enqueued`` and friends)."""
    from .testing import capture

    with capture(sqljobs_queue) as captured:
        yield captured


@pytest.fixture
def jobs_drain(jobs_captured: Captured, sqljobs_using: Any) -> Callable[..., DrainResult]:
    """``jobs_drain()`` runs the due jobs committed during the test, and those they enqueue
    (in the test's transaction with ``sqljobs_using``)."""
    if sqljobs_using is None:
        return jobs_captured.drain
    return partial(jobs_captured.drain, using=sqljobs_using)


@pytest.fixture
def jobs_adrain(
    jobs_captured: Captured, sqljobs_using: Any
) -> Callable[..., Awaitable[DrainResult]]:
    """``await jobs_adrain()``: :func:`jobs_drain` for ``async def`` tests; async tasks run on
    the test's loop (in its transaction with an async ``sqljobs_using``)."""
    if sqljobs_using is None:
        return jobs_captured.adrain
    return partial(jobs_captured.adrain, using=sqljobs_using)


@pytest.fixture
def jobs_no_worker(sqljobs_queue: JobQueue) -> Iterator[JobQueue]:
    """No in-process worker for the queue in apps started during the test."""
    from .testing import no_worker

    with no_worker(sqljobs_queue):
        yield sqljobs_queue
