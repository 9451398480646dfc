"""Per-key rate windows and debounce windows are on the database's clock: an enqueuer or a
claimer whose Python clock is off by hours changes neither (see test_clock_skew.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from sqljobs import Debounce, JobQueue, KeyLimit
from sqljobs.store._dialects import db_now
from tests.edges_time.test_clock_skew import skew_clock


def database_now(jobs: JobQueue) -> datetime:
    now: datetime = jobs.store.run(lambda conn: conn.execute(select(db_now())).scalar_one())
    return now


def test_a_debounce_window_counts_from_the_databases_now_not_the_enqueuers(
    jobs: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    @jobs.task(debounce=Debounce(window=60))
    def refresh(n: int) -> None:
        pass

    skew_clock(monkeypatch, -timedelta(hours=1))
    before = database_now(jobs)
    job_id = refresh.enqueue(n=1)
    refresh.enqueue(n=2)
    after = database_now(jobs)
    run_at = jobs.get(job_id).run_at
    assert before + timedelta(seconds=60) <= run_at <= after + timedelta(seconds=60)


def test_a_claimer_whose_clock_runs_ahead_does_not_open_a_new_rate_window(
    jobs: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    @jobs.task(limit=KeyLimit(by_args=["tenant"], rate=(1, 3600)))
    def export(tenant: str, n: int) -> None:
        pass

    ids = [export.enqueue(tenant="A", n=i) for i in range(2)]

    def claim() -> list[int]:
        claimed = jobs.store.claim_keyed(
            worker_id="w",
            queues=["default"],
            limit=5,
            lease=timedelta(seconds=30),
            tasks=[export.name],
        )
        return [job.id for job in claimed]

    assert claim() == ids[:1]
    skew_clock(monkeypatch, timedelta(hours=2))  # past the window, by this process's clock
    assert claim() == []
