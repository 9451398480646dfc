"""The worker: claim -> execute -> complete, each step a small unit.

:class:`Worker` wires them: the claimer takes batches of jobs into free slots, executor
threads run each job in its own Session (``_executor``, ``_runner``), the completer stores
the completions of session-less jobs in batches, and the heartbeat renews leases, stores
progress, tells running tasks they were cancelled and runs maintenance (rescue, prune, cron).
"""

from __future__ import annotations

from ._claimer import CLAIM_COOLDOWN_SECONDS, SETTINGS_REFRESH, SHORT_JOB_SECONDS
from ._completer import MAX_COMPLETION_BATCH
from ._worker import OWN_CONNECTIONS, Worker, WorkerStats

__all__ = [
    "CLAIM_COOLDOWN_SECONDS",
    "MAX_COMPLETION_BATCH",
    "OWN_CONNECTIONS",
    "SETTINGS_REFRESH",
    "SHORT_JOB_SECONDS",
    "Worker",
    "WorkerStats",
]
