"""``sqljobs worker``: run a worker until SIGTERM or Ctrl-C, with a summary for people."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..jobqueue import JobQueue
from ..worker._worker import DEFAULT_PRUNE_AFTER
from ._loading import EXIT_ERROR, EXIT_OK
from ._output import Rate, summary_table, worker_summary

if TYPE_CHECKING:
    from rich.console import Console

    from ..worker import Worker


def run_worker(
    jobs: JobQueue,
    *,
    concurrency: int,
    queues: list[str] | None,
    grace: float,
    prefetch: int | None = None,
    poll_interval: float,
    lease: float,
    prune_after: timedelta | None = DEFAULT_PRUNE_AFTER,
    prune_interval: float = 300.0,
    live: bool = False,
    summary_interval: float = 60.0,
    console: Console | None = None,
) -> int:
    worker = jobs.worker(
        concurrency=concurrency,
        prefetch=prefetch,
        queues=queues,
        grace=grace,
        poll_interval=poll_interval,
        lease=lease,
        prune_after=prune_after,
        prune_interval=prune_interval,
    )
    stop_requested = threading.Event()
    signals_seen = 0

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            logging.getLogger("sqljobs").warning(
                "received %s: stopping (grace %.0fs; send again to skip the wait)",
                signal.Signals(signum).name,
                grace,
            )
            stop_requested.set()
        else:
            worker.stop(grace=0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.start()
    print(
        f"sqljobs worker {worker.id} running queues {','.join(worker.queues)} with "
        f"concurrency {concurrency}, prefetch {'automatic' if prefetch is None else prefetch}",
        flush=True,
    )
    rate = Rate()

    def summary() -> dict[str, Any]:
        return worker_summary(worker, rate.add(worker.stats.completed))

    try:
        if live:
            from rich.live import Live

            with Live(
                summary_table(worker, summary()),
                console=console,
                refresh_per_second=2,
                transient=False,
            ) as display:
                while not stop_requested.wait(0.5) and not worker.stopped:
                    display.update(summary_table(worker, summary()))
        else:
            next_line = time.monotonic() + summary_interval
            while not stop_requested.wait(0.5) and not worker.stopped:
                if summary_interval > 0 and time.monotonic() >= next_line:
                    next_line += summary_interval
                    print_summary_line(worker, summary())
    finally:
        worker.stop()
        jobs.close()
    if not live and summary_interval > 0:
        print_summary_line(worker, summary())
    print(f"sqljobs worker {worker.id} stopped: {worker.stats}", flush=True)
    if not stop_requested.is_set():
        # Nobody asked it to stop: its claimer crashed (logged above). Exit non-zero so a
        # supervisor restarts it.
        print(f"error: sqljobs worker {worker.id} stopped on its own", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def print_summary_line(worker: Worker, summary: dict[str, Any]) -> None:
    fields = " ".join(f"{k}={v}" for k, v in summary.items())
    print(f"sqljobs worker {worker.id}: {fields}", flush=True)
