"""Periodic upkeep any live worker performs: rescue jobs whose lease expired, forget dead
workers. Runs on the worker's heartbeat thread; never needs a user-written cron."""

from __future__ import annotations

import logging
from datetime import timedelta

from . import events
from .events import EventBus
from .store import JobStore

log = logging.getLogger("sqljobs.maintenance")


class Maintenance:
    def __init__(self, store: JobStore, *, bus: EventBus) -> None:
        self._store = store
        self._bus = bus

    def run_once(self, *, lease: timedelta) -> list[int]:
        rescued = self._store.rescue()
        for job_id in rescued:
            log.warning("job %s: its worker stopped renewing the lease; rescued", job_id)
            self._bus.emit(events.JOB_RESCUED, job_id=job_id)
        self._store.prune_workers(silent_for=lease * 4)
        return rescued
