"""The dashboard's page per job graph in a real Chromium: each job's state and what it waits
for, the live refresh as the graph runs, the Cancel graph button; saves a screenshot
(``bash scripts/screenshots`` writes it to docs/screenshots/)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from sqljobs import JobQueue, JobState
from tests.browser.test_dashboard import base_url, page, screenshots, shoot  # noqa: F401

pytestmark = pytest.mark.dialects(
    "sqlite", reason="the page is the same on every database; its queries run in test_graphs"
)


@pytest.fixture
def order(jobs: JobQueue) -> dict[str, Any]:
    """A graph for order 1042: a charge, a group of three packing jobs, a partner
    notification that fails (and cancels its follow-up), and a fan-in that waits for a gate."""
    gate = threading.Event()

    @jobs.task(name="shop.charge_card")
    def charge_card(order_id: int) -> str:
        return f"charge-{order_id}"

    @jobs.task(name="shop.pack_item")
    def pack_item(charge: str, sku: str) -> str:
        return f"{sku} packed"

    @jobs.task(name="shop.notify_partner", max_attempts=1)
    def notify_partner(partner: str) -> None:
        raise RuntimeError(f"partner {partner} refused the notice")

    @jobs.task(name="shop.log_notice")
    def log_notice(partner: str) -> None:
        return None

    @jobs.task(name="shop.wait_for_courier")
    def wait_for_courier() -> str:
        gate.wait(30)
        return "courier booked"

    @jobs.task(name="shop.ship_order")
    def ship_order(packed: list[str], order_id: int) -> str:
        return f"order {order_id} shipped with {len(packed) - 1} items"

    g = jobs.graph(name="order 1042")
    charge = g.add(charge_card, order_id=1042)
    packed = [
        g.add(pack_item, depends_on=charge, result_as="charge", sku=f"SKU-{i}") for i in range(3)
    ]
    notice = g.add(notify_partner, depends_on=charge, partner="acme")
    g.add(log_notice, depends_on=notice, partner="acme")
    courier = g.add(wait_for_courier)
    ship = g.add(ship_order, depends_on=[*packed, courier], results_as="packed", order_id=1042)
    graph_id = g.enqueue()

    other = jobs.graph(name="order 1043")
    first = other.add(wait_for_courier, delay=3600)
    other.add(ship_order, depends_on=first, results_as="packed", order_id=1043)
    other_id = other.enqueue()
    return {"graph_id": graph_id, "ship": ship, "gate": gate, "other_id": other_id}


def test_the_graph_page_shows_each_job_and_follows_the_graph_live(
    page: Any,  # noqa: F811
    base_url: str,  # noqa: F811
    jobs: JobQueue,
    order: dict[str, Any],
    screenshots: Path,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    rows = page.locator("#graph-jobs tbody tr")
    with jobs.worker(concurrency=2, poll_interval=0.05):
        page.goto(f"{base_url}/graphs/{order['graph_id']}")
        expect(page.locator("h1")).to_contain_text("order 1042")
        expect(rows).to_have_count(8)
        ship = page.locator(f'#graph-jobs tr[data-job="{order["ship"].id}"]')
        expect(page.locator('#graph-jobs tr:has-text("shop.log_notice")')).to_contain_text(
            "cancelled"
        )
        expect(page.locator('#graph-jobs tr:has-text("shop.notify_partner")')).to_contain_text(
            "refused the notice"
        )
        expect(ship).to_contain_text("blocked")
        expect(page.locator("#graph-state")).to_have_text("running")
        shoot(page, screenshots, "dashboard-graph.png")

        page.evaluate("window.__still_here = true")  # survives only if nothing reloads
        order["gate"].set()
        expect(ship).to_contain_text("completed", timeout=20_000)
        expect(page.locator("#graph-state")).to_have_text("failed")
        assert page.evaluate("window.__still_here") is True

        page.locator(f'#graph-jobs tr[data-job="{order["ship"].id}"] a').first.click()
        expect(page.locator("#job-graph")).to_have_text(f"graph {order['graph_id']}")


def test_the_cancel_graph_button_cancels_its_unfinished_jobs(
    page: Any,  # noqa: F811
    base_url: str,  # noqa: F811
    jobs: JobQueue,
    order: dict[str, Any],
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/graphs/{order['other_id']}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#cancel-graph-button")
    page.wait_for_url("**notice=graph-cancelled")
    expect(page.locator(".notice")).to_contain_text("unfinished jobs were cancelled")
    expect(page.locator("#graph-counts")).to_have_text("2 cancelled")
    assert {job.state for job in jobs.get_graph(order["other_id"]).jobs} == {JobState.CANCELLED}
    expect(page.locator("#cancel-graph-button")).to_have_count(0)
