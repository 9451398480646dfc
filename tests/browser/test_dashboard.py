"""The dashboard in a real Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Opens the overview, filters the job list, opens a failed job, presses retry and watches its
state change without a reload; checks that a `<script>` in an error renders as text; saves a
screenshot of each page (in a temporary folder; `bash scripts/screenshots` writes them to
docs/screenshots/ for the README).
Locally a missing browser skips this test; under CI=true it fails.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy import update
from sqlalchemy.orm import Session

import sqljobs.fastapi
from sqljobs import Backoff, JobContext, JobQueue, JobState
from sqljobs._utils import utcnow
from sqljobs.schema import jobs_table
from tests import databases
from tests.helpers import add_counters, eventually, free_port, increment

CHROMIUM = os.environ.get("SQLJOBS_CHROMIUM", "/usr/bin/chromium")
#: Where screenshots go: a temporary folder, unless ``bash scripts/screenshots`` refreshes the
#: README's (it sets SQLJOBS_SCREENSHOTS=docs/screenshots).
SCREENSHOTS_ENV = "SQLJOBS_SCREENSHOTS"
EVIL = "<script>window.__xss = 1</script>card declined"
PREFIX = "/admin/jobs"

pytestmark = pytest.mark.dialects(
    "sqlite", reason="the page is the same on every database; its queries run in test_rest_api"
)

security = HTTPBasic()


def require_admin(credentials: Annotated[HTTPBasicCredentials, Depends(security)]) -> None:
    if (credentials.username, credentials.password) != ("admin", "secret"):
        raise HTTPException(401, "wrong credentials", headers={"WWW-Authenticate": "Basic"})


def chromium_or_skip() -> str:
    if Path(CHROMIUM).exists() or shutil.which(CHROMIUM):
        return CHROMIUM
    message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if databases.IN_CI:
        pytest.fail(f"CI runs the browser test: {message}")
    pytest.skip(message)


class Server:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread."""

    def __init__(self, app: FastAPI) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        eventually(lambda: self.server.started, timeout=20)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def spread_over_the_last_hour(jobs: JobQueue) -> None:
    """Backdate finish times so the throughput chart shows an hour of history."""
    now = utcnow()
    with jobs.engine.begin() as conn:
        for job in jobs.list_jobs(state=JobState.COMPLETED):
            minutes = (job.id * 7) % 55 + 1
            conn.execute(
                update(jobs_table)
                .where(jobs_table.c.id == job.id)
                .values(finished_at=now - timedelta(minutes=minutes, seconds=job.id))
            )


@pytest.fixture
def shop(jobs: JobQueue, session_factory: Any) -> dict[str, Any]:
    """A small app's worth of jobs: completed, failed, waiting, on three queues."""
    add_counters(session_factory, 1)
    healed = threading.Event()

    @jobs.task(name="shop.send_receipt", queue="mail")
    def send_receipt(order_id: int) -> dict[str, Any]:
        return {"sent_to": f"customer-{order_id}@example.com"}

    @jobs.task(name="shop.sync_stock", queue="default")
    def sync_stock(session: Session, sku: str) -> None:
        increment(session)

    @jobs.task(
        name="shop.charge_card", queue="payments", max_attempts=2,
        backoff=Backoff(base=0.01, jitter=0),
    )  # fmt: skip
    def charge_card(order_id: int, amount_cents: int) -> str:
        if not healed.is_set():
            raise RuntimeError(f"payment gateway timed out for order {order_id}")
        return "charged"

    @jobs.task(name="shop.notify_partner", queue="default", max_attempts=1)
    def notify_partner(partner: str) -> None:
        raise ValueError(EVIL)

    jobs.enqueue_many(None, [send_receipt.prepare(order_id=i) for i in range(1, 25)])
    jobs.enqueue_many(None, [sync_stock.prepare(sku=f"SKU-{i:04}") for i in range(12)])
    charge_id = charge_card.enqueue(order_id=1042, amount_cents=12_900)
    evil_id = notify_partner.enqueue(partner="acme")
    jobs.drain(include_scheduled=True)
    spread_over_the_last_hour(jobs)
    send_receipt.configure(delay=1800).enqueue(order_id=99)
    sync_stock.configure(delay=600).enqueue(sku="SKU-LATE")
    assert jobs.get(charge_id).state is JobState.DISCARDED
    return {"charge_id": charge_id, "evil_id": evil_id, "healed": healed}


@pytest.fixture
def base_url(jobs: JobQueue) -> Iterator[str]:
    app = FastAPI(title="shop")
    app.include_router(
        sqljobs.fastapi.router(jobs, dependencies=[Depends(require_admin)], refresh_seconds=0.5),
        prefix=PREFIX,
    )
    with Server(app) as url:
        yield url + PREFIX


@pytest.fixture
def page(base_url: str) -> Iterator[Any]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(
            http_credentials={"username": "admin", "password": "secret"},
            viewport={"width": 1280, "height": 900},
        )
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        tab.set_default_timeout(15_000)
        yield tab
        context.close()
        browser.close()
        assert errors == [], f"errors in the page: {errors}"


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(page: Any, folder: Path, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(folder / name), full_page=full_page)
    assert (folder / name).stat().st_size > 0


def test_overview_filter_open_failed_job_retry(
    page: Any, base_url: str, jobs: JobQueue, shop: dict[str, Any], screenshots: Path
) -> None:
    from playwright.sync_api import expect

    with jobs.worker(concurrency=2, poll_interval=0.05, queues=["payments", "default", "mail"]):
        page.goto(base_url + "/")
        expect(page.locator("h1")).to_have_text("Queues")
        expect(page.locator('[data-state-total="completed"]')).to_have_text("36")
        expect(page.locator('[data-state-total="discarded"]')).to_have_text("2")
        expect(page.locator("#queues-table tbody tr")).to_have_count(3)
        expect(page.locator("#throughput-chart svg rect").first).to_be_visible()
        expect(page.locator("text=No worker is running")).to_have_count(0)
        shoot(page, screenshots, "dashboard-overview.png")

        page.get_by_role("link", name="Jobs", exact=True).click()
        expect(page.locator("#jobs-summary")).to_contain_text("of 40 jobs")
        shoot(page, screenshots, "dashboard-jobs.png", full_page=False)
        page.select_option("#filter-state", "discarded")
        page.wait_for_url("**/jobs?state=discarded**")
        expect(page.locator("#jobs-table tbody tr")).to_have_count(2)
        expect(page.locator("#jobs-summary")).to_contain_text("of 2 jobs (filtered)")
        page.select_option("#filter-queue", "payments")
        page.wait_for_url("**queue=payments**")
        expect(page.locator("#jobs-table tbody tr")).to_have_count(1)

        page.locator(f'#jobs-table a[href$="/jobs/{shop["charge_id"]}"]').first.click()
        expect(page.locator("#job-state")).to_have_text("discarded")
        expect(page.locator(".error-message").first).to_contain_text(
            "payment gateway timed out for order 1042"
        )
        expect(page.locator("pre.traceback").first).to_contain_text("Traceback")
        expect(page.locator("#job-errors > li")).to_have_count(2)
        shoot(page, screenshots, "dashboard-job.png")

        shop["healed"].set()
        page.click("#retry-button")
        page.wait_for_url("**notice=retried")
        expect(page.locator(".notice")).to_contain_text("will run again")
        page.evaluate("window.__still_here = true")  # survives only if nothing reloads
        expect(page.locator("#job-state")).to_have_text("completed", timeout=20_000)
        assert page.evaluate("window.__still_here") is True
        expect(page.locator("#job-result")).to_contain_text("charged")
        assert jobs.get(shop["charge_id"]).state is JobState.COMPLETED


def test_an_error_with_a_script_tag_renders_as_text(
    page: Any, base_url: str, shop: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/jobs/{shop['evil_id']}")
    message = page.locator(".error-message").first
    expect(message).to_contain_text("ValueError: <script>window.__xss = 1</script>card declined")
    # Mark the rendered fragment, then wait for the live refresh to replace it.
    page.evaluate("document.querySelector('[data-live] .error-message').dataset.stale = '1'")
    eventually(
        lambda: page.evaluate(
            "(() => { const m = document.querySelector('[data-live] .error-message');"
            " return m !== null && m.dataset.stale === undefined; })()"
        ),
        timeout=15,
    )
    expect(message).to_contain_text("<script>")
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.querySelectorAll('main script').length") == 0
    page.goto(f"{base_url}/jobs?state=discarded")
    expect(page.locator(".error-cell").first).to_contain_text("<script>")
    assert page.evaluate("window.__xss") is None


def test_a_forged_post_is_refused(page: Any, base_url: str, shop: dict[str, Any]) -> None:
    page.goto(f"{base_url}/jobs/{shop['charge_id']}")
    response = page.request.post(
        f"{base_url}/jobs/{shop['charge_id']}/retry", form={"csrf_token": "forged.value"}
    )
    assert response.status == 403
    assert "CSRF" in response.text()


def test_bulk_retry_by_filter_counts_first_and_a_queue_is_paused_and_resumed(
    page: Any, base_url: str, jobs: JobQueue, shop: dict[str, Any], screenshots: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/jobs?state=discarded")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(2)
    page.fill("#filter-error", "RuntimeError")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**error_type=RuntimeError**")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    page.select_option("#bulk-action", "retry")
    page.click("#bulk-preview")
    expect(page.locator("#bulk-count")).to_contain_text("1 job matches")
    expect(page.locator(".filter-summary")).to_contain_text("error_type=RuntimeError")
    assert jobs.get(shop["charge_id"]).state is JobState.DISCARDED  # counting changed nothing
    shoot(page, screenshots, "dashboard-bulk.png")

    page.click("#bulk-confirm")
    expect(page.locator("#bulk-done")).to_contain_text("Retry: 1 of 1 job changed in 1 batch")
    assert jobs.get(shop["charge_id"]).state is JobState.AVAILABLE
    assert jobs.get(shop["evil_id"]).state is JobState.DISCARDED

    page.goto(base_url + "/")
    page.click('[data-pause="mail"]')
    page.wait_for_url("**notice=paused")
    expect(page.locator('[data-paused="mail"]')).to_have_text("paused")
    assert jobs.paused_queues() == ["mail"]
    page.click('[data-resume="mail"]')
    page.wait_for_url("**notice=resumed")
    expect(page.locator('[data-paused="mail"]')).to_have_count(0)
    assert jobs.paused_queues() == []


def test_the_job_page_shows_its_steps_and_their_progress_live(
    page: Any, base_url: str, jobs: JobQueue, session_factory: Any, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    add_counters(session_factory, 1)
    gateway_up = threading.Event()

    def reserve_stock(session: Session, order_id: int) -> dict[str, Any]:
        increment(session)
        return {"reserved": order_id}

    def charge(order_id: int) -> str:
        if not gateway_up.is_set():
            raise RuntimeError(f"payment gateway timed out for order {order_id} {EVIL}")
        return "ch_1042"

    def ship(session: Session, charge_id: str) -> str:
        increment(session)
        return f"shipped after {charge_id}"

    @jobs.task(name="shop.fulfil", queue="orders", backoff=Backoff(base=3600, jitter=0))
    def fulfil(ctx: JobContext, order_id: int) -> str:
        ctx.step("reserve-stock", reserve_stock, order_id=order_id)
        charge_id = ctx.step("charge", charge, order_id=order_id)
        return ctx.step("ship", ship, charge_id=charge_id)

    job_id = fulfil.enqueue(order_id=1042)
    jobs.drain()
    page.goto(f"{base_url}/jobs/{job_id}")
    rows = page.locator("#job-steps tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("reserve-stock")
    expect(rows.nth(0)).to_contain_text("completed")
    expect(rows.nth(1)).to_contain_text("failed")
    expect(rows.nth(1).locator(".step-error")).to_contain_text(
        "RuntimeError: payment gateway timed out for order 1042 <script>"
    )
    assert page.evaluate("window.__xss") is None
    shoot(page, screenshots, "dashboard-job-steps.png")

    gateway_up.set()
    with jobs.worker(concurrency=1, poll_interval=0.05, queues=["orders"]):
        page.click("#retry-button")
        page.wait_for_url("**notice=retried")
        expect(page.locator("#job-state")).to_have_text("completed", timeout=20_000)
        expect(rows).to_have_count(3)
        expect(rows.nth(1)).to_contain_text("completed")
        expect(rows.nth(2)).to_contain_text("ship")
        expect(page.locator("#job-result")).to_contain_text("shipped after ch_1042")
    assert [step.attempts for step in jobs.steps(job_id)] == [1, 2, 1]
