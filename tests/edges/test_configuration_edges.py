"""Issue 12 edges: unusable configuration is refused with a clear error, not a database one."""

from __future__ import annotations

import math
import socket
from datetime import timedelta
from typing import Any

import pytest

import sqljobs
from sqljobs import ConfigurationError, JobQueue, Unique
from sqljobs.exceptions import Retry, Snooze
from sqljobs.worker import _worker
from tests.helpers import eventually

MAX_WORKER_ID = 64  # the workers table's and lease_owner's column width


# -- case 8: a typo in Unique(by_args=[...]) -------------------------------------------------


def test_unique_by_args_typo_is_refused_at_registration(offline_jobs: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match=r"'userid'.*'user_id'.*did you mean 'user_id'"):

        @offline_jobs.task(unique=Unique(by_args=["userid"]))
        def digest(user_id: int) -> None: ...


@pytest.mark.dialects("sqlite", reason="unique keys merge in every database: test_flow_control")
def test_unique_by_args_with_known_names_still_merges_same_key(jobs: JobQueue) -> None:
    @jobs.task(unique=Unique(by_args=["user_id"]))
    def digest(user_id: int, force: bool = False) -> None: ...

    assert digest.enqueue(user_id=1) == digest.enqueue(user_id=1, force=True)
    assert digest.enqueue(user_id=2) != digest.enqueue(user_id=1)


# -- case 14: Snooze / Retry with an unusable delay -------------------------------------------


@pytest.mark.parametrize("delay", [-1, math.nan, math.inf, 1e12, timedelta(days=-1), "5"])
@pytest.mark.parametrize("control", [Snooze, Retry])
def test_snooze_or_retry_with_unusable_delay_is_refused(control: Any, delay: Any) -> None:
    with pytest.raises(ValueError, match="delay"):
        control(delay)


@pytest.mark.parametrize("delay", [0, 1.5, timedelta(minutes=5)])
def test_snooze_and_retry_accept_usable_delays(delay: Any) -> None:
    assert Snooze(delay).delay == delay
    assert Retry(delay).delay == delay


def test_unusable_snooze_delay_is_the_attempts_recorded_error(jobs: JobQueue) -> None:
    @jobs.task(max_attempts=1)
    def sleepy() -> None:
        raise Snooze(math.nan)

    job_id = sleepy.enqueue()
    jobs.drain()
    job = jobs.get(job_id)
    assert job.state.value == "discarded"
    assert [e.type for e in job.errors] == ["ValueError"]
    assert "Snooze delay" in job.errors[0].message


# -- case 16: a long host name overflowed the 64-character worker id --------------------------


def test_default_worker_id_fits_with_a_long_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "h" * 200)
    ids = {_worker.worker_id() for _ in range(5)}
    assert all(len(i) <= MAX_WORKER_ID for i in ids) and len(ids) == 5


def test_a_worker_with_a_long_hostname_starts(
    jobs: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "very-long-host-" + "x" * 60)
    done: list[int] = []

    @jobs.task
    def work(n: int) -> None:
        done.append(n)

    work.enqueue(n=1)
    worker = jobs.worker(concurrency=1)
    worker.start()
    try:
        eventually(lambda: done == [1])
    finally:
        worker.stop()
    assert len(worker.id) <= MAX_WORKER_ID


def test_explicit_worker_name_too_long_is_refused(offline_jobs: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="1 to 64 characters"):
        offline_jobs.worker(name="w" * 65)


assert sqljobs  # the package under test
