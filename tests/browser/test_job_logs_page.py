"""A job's logs on its dashboard page in a real Chromium: the lines of each attempt (a
failed one and the retry), in order, with their level, logger and message, markup shown as
text; saves a screenshot (``bash scripts/screenshots`` writes it to docs/screenshots/)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from sqljobs import Backoff, JobContext, JobQueue, JobState
from tests.browser.test_dashboard import EVIL, base_url, page, screenshots, shoot  # noqa: F401

pytestmark = pytest.mark.dialects(
    "sqlite", reason="the page is the same on every database; its queries run in test_job_logs"
)

carrier = logging.getLogger("shop.carrier")


def test_the_job_page_shows_the_log_lines_of_each_attempt(
    page: Any,  # noqa: F811
    base_url: str,  # noqa: F811
    jobs: JobQueue,
    screenshots: Path,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    @jobs.task(name="shop.ship_order", max_attempts=3, backoff=Backoff(base=3600, jitter=0))
    def ship_order(ctx: JobContext, order_id: int) -> str:
        ctx.logger.info("packing order %d (3 items)", order_id)
        carrier.warning("carrier API answered in 2.4 s")
        if ctx.attempt == 1:
            ctx.logger.error("label refused: %s", EVIL)
            raise RuntimeError("carrier refused the label")
        ctx.logger.info("label printed, tracking number 1Z999AA10123456784")
        return "shipped"

    job_id = ship_order.enqueue(order_id=1042)
    jobs.drain()
    jobs.drain(include_scheduled=True)
    assert jobs.get(job_id).state is JobState.COMPLETED

    page.goto(f"{base_url}/jobs/{job_id}")
    rows = page.locator("#job-logs tbody tr")
    expect(rows).to_have_count(6)
    expect(rows.nth(0)).to_contain_text("packing order 1042 (3 items)")
    expect(rows.nth(1)).to_contain_text("shop.carrier")
    expect(rows.nth(2)).to_contain_text("ERROR")
    expect(rows.nth(2).locator(".log-message")).to_contain_text("label refused: <script>")
    expect(page.locator('#job-logs tr[data-attempt="2"]')).to_have_count(3)
    expect(rows.nth(5)).to_contain_text("tracking number 1Z999AA10123456784")
    assert page.evaluate("window.__xss") is None
    shoot(page, screenshots, "dashboard-job-logs.png")
