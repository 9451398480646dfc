"""pytest fixtures for testing an app that uses sqljobs; pytest loads them by itself once
sqljobs is installed (entry point ``pytest11``). Only this module imports pytest.

Tell them the app's queue with one fixture in ``conftest.py``::

    @pytest.fixture
    def sqljobs_queue():
        return app.jobs

Then ask for what a test needs:

- ``jobs_reset``: the queue, emptied of every job before the test;
- ``jobs_inline``: the queue in inline mode for the test (see :func:`sqljobs.testing.inline`:
  every job runs in the committing thread and its errors are raised from ``commit()``);
- ``jobs_captured``: a :class:`sqljobs.testing.Captured` of the jobs committed during the test;
- ``jobs_drain``: a function running the jobs committed during the test (and theirs);
- ``jobs_no_worker``: apps started during the test run no in-process worker for the queue
  (ask for it before the fixture that enters ``TestClient(app)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

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
def jobs_reset(sqljobs_queue: JobQueue) -> JobQueue:
    """The queue, emptied of every job (whatever its state) before the test."""
    from .testing import reset

    reset(sqljobs_queue)
    return sqljobs_queue


@pytest.fixture
def jobs_inline(sqljobs_queue: JobQueue) -> Iterator[JobQueue]:
    """The queue in inline mode for the test; task errors are raised from ``commit()``."""
    from .testing import inline

    with inline(sqljobs_queue) as queue:
        yield queue


@pytest.fixture
def jobs_captured(sqljobs_queue: JobQueue) -> Iterator[Captured]:
    """The jobs committed during the test (pass it to ``testing.enqueued`` and friends)."""
    from .testing import capture

    with capture(sqljobs_queue) as captured:
        yield captured


@pytest.fixture
def jobs_drain(jobs_captured: Captured) -> Callable[..., DrainResult]:
    """``jobs_drain()`` runs the due jobs committed during the test, and those they enqueue."""
    return jobs_captured.drain


@pytest.fixture
def jobs_no_worker(sqljobs_queue: JobQueue) -> Iterator[JobQueue]:
    """No in-process worker for the queue in apps started during the test."""
    from .testing import no_worker

    with no_worker(sqljobs_queue):
        yield sqljobs_queue
