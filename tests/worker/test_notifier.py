"""PostgreSQL LISTEN: a stopping listener returns at once (woken by a notification), not at
its next check, so stopping a worker does not wait for it."""

from __future__ import annotations

import threading

import pytest

from sqljobs import JobQueue
from sqljobs.worker._notifier import NotificationListener
from tests.helpers import eventually

pytestmark = pytest.mark.needs("listen_notify")


def test_a_stopping_listener_is_woken_instead_of_waiting_for_its_next_check(
    jobs: JobQueue,
) -> None:
    queues: list[str] = []
    listener = NotificationListener(
        jobs.engine, queues.append, wake=jobs.store.wake_listeners, check_every=600
    )
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    assert listener.listening.wait(30)

    @jobs.task(queue="mail")
    def send() -> None: ...

    send.enqueue()
    eventually(lambda: queues == ["mail"])
    listener.stop()
    thread.join(60)  # without the wake-up it would sleep out its 600 s check
    assert not thread.is_alive()
    assert queues == ["mail"]  # the empty wake-up notification is not a queue
