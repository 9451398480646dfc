"""Issue 12, case 10: jobs claimed ahead (prefetch) by a worker whose executor hangs do not
wait for ever while another worker idles: after a lease they go back to the queue without
costing an attempt."""

from __future__ import annotations

import threading

from sqljobs import JobQueue, JobState
from tests.helpers import eventually


def test_prefetched_jobs_behind_a_hung_task_go_back_to_an_idle_worker(jobs: JobQueue) -> None:
    hang = threading.Event()
    ran: list[tuple[str, int]] = []

    @jobs.task
    def work(n: int) -> int:
        ran.append((threading.current_thread().name, n))
        if n == 0:
            hang.wait(120)
        return n

    hung = work.enqueue(n=0)
    # A 3 s lease: on a loaded machine a 1 s one could expire under the hung job itself.
    options = {"concurrency": 1, "poll_interval": 0.02, "lease": 3, "rescue_interval": 0.2}
    with jobs.worker(prefetch=2, **options) as busy:
        eventually(lambda: ran == [(ran[0][0], 0)] if ran else False)
        waiting = [work.enqueue(n=n) for n in (1, 2)]
        eventually(lambda: len(busy.running_jobs) == 3)
        with jobs.worker(prefetch=0, **options):
            eventually(
                lambda: all(jobs.get(i).state is JobState.COMPLETED for i in waiting),
                timeout=30,
            )
        hang.set()
    assert all(jobs.get(i).attempt == 1 for i in waiting)
    assert sorted(n for _, n in ran) == [0, 1, 2]
    assert jobs.get(hung).state is JobState.COMPLETED
