"""docs/metrics.md's Sentry example, run as written: a discarded job reaches a real
sentry_sdk client (its transport keeps what would be sent) with the task's exception, tags
and fingerprint; a retried attempt does not."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from sqljobs import JobQueue, JobState, events
from tests.helpers import EventLog

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def documented_sentry_snippet() -> str:
    section = DOC.read_text().split("### Sentry", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "docs/metrics.md has no python block under ### Sentry"
    return match.group(1)


class KeptEnvelopes(Transport):
    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        return [
            item.payload.json
            for envelope in self.envelopes
            for item in envelope.items
            if item.type == "event" and item.payload.json is not None
        ]


@pytest.fixture
def sentry() -> Iterator[KeptEnvelopes]:
    transport = KeptEnvelopes()
    sentry_sdk.init(
        dsn="https://key@sentry.invalid/1", transport=transport, default_integrations=False
    )
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # an inactive client again


class PaymentDeclined(Exception):
    pass


@pytest.mark.dialects("sqlite", reason="events are emitted above the store; one database is enough")
def test_the_documented_sentry_hook_reports_each_discarded_job_with_its_exception(
    jobs: JobQueue, sentry: KeptEnvelopes
) -> None:
    exec(documented_sentry_snippet(), {"jobs": jobs})

    @jobs.task(name="shop.charge_card", max_attempts=2, backoff=0)
    def charge_card(order_id: int) -> None:
        raise PaymentDeclined(f"card of order {order_id} declined")

    finished = EventLog(jobs, events.JOB_DISCARDED, events.JOB_FAILED)
    job_id = charge_card.enqueue(order_id=7)
    with jobs.worker(concurrency=1, poll_interval=0.02):
        finished.wait_for(events.JOB_DISCARDED)
    sentry_sdk.flush()
    assert jobs.get(job_id).state is JobState.DISCARDED
    assert finished.count(events.JOB_FAILED) == 1  # the first attempt: retried, not reported

    [event] = sentry.events()
    [exception] = event["exception"]["values"]
    assert exception["type"] == "PaymentDeclined"
    assert exception["value"] == "card of order 7 declined"
    assert any(f["function"] == "charge_card" for f in exception["stacktrace"]["frames"])
    assert event["tags"] == {"sqljobs.task": "shop.charge_card", "sqljobs.queue": "default"}
    assert event["contexts"]["sqljobs"] == {"job_id": job_id, "attempt": 2, "max_attempts": 2}
    assert event["fingerprint"] == ["sqljobs", "shop.charge_card", f"{__name__}.PaymentDeclined"]
