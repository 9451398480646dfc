"""Flow control in the claim: per-queue limits (``configure_queue``) and per-key limits
(``KeyLimit``), enforced by locking a row that every claimer of the queue or key locks too.

A queue's row in ``sqljobs_queues`` and a key's row in ``sqljobs_keys`` are locked for the
claim's transaction, so a claimer counts the running jobs that other processes' claims
committed before it, and no claim of the same queue or key can run beside it. Running jobs
are counted from the job table itself: a job whose worker died stops counting when rescue
moves it out of ``running`` (its lease expired), never later. Windows of rate limits are
measured on the database's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from ..jobs import Job
from . import _flow_statements as flow
from . import _statements
from ._base import _queues
from ._leases import LeaseStore

#: Keyed candidates read per claimed job wanted: enough that keys filtered away under the
#: lock (another claimer got them first) leave work for this claim.
CANDIDATES_PER_SLOT = 4


@dataclass
class _Window:
    """A rate limit's current window (on the database's clock) and the starts in it."""

    start: datetime | None
    count: int

    def allowance(self, rate: int | None, period: float | None, now: datetime) -> int | None:
        if rate is None or not period:
            return None
        if self.start is None or now - self.start >= timedelta(seconds=period):
            self.start, self.count = now, 0
        return rate - self.count


@dataclass
class _KeyState:
    """A locked key as this claim sees it."""

    running: int
    head: int | None
    window: _Window
    #: The database's clock when the key was locked: it measures the key's rate window.
    now: datetime
    chosen: list[int] = field(default_factory=list)
    rated: bool = False


class FlowStore(LeaseStore):
    """The claims with limits of :class:`~sqljobs.store.JobStore`."""

    def _claim_in(self, conn: Connection, params: dict[str, Any], lease: timedelta) -> list[Job]:
        raise NotImplementedError  # JobStore's claim statement

    @staticmethod
    def _claim_params(
        worker_id: str, queues: Sequence[str], limit: int, tasks: Sequence[str] | None = None
    ) -> dict[str, Any]:
        params = {
            "p_queues": list(queues),
            "p_limit": limit,
            "p_owner": worker_id,
            "p_started": False,
        }
        if tasks is not None:
            params["p_tasks"] = sorted(tasks)
        return params

    # -- per-queue limits ----------------------------------------------------------------

    def _queue_allowance(
        self, conn: Connection, queue: str, limit: int
    ) -> tuple[int, Callable[[int], None]]:
        """How many jobs of ``queue`` this claim may take (the queue's row locked until the
        claim commits), and what to call with the number claimed (counts rate-limited
        starts)."""
        settings = conn.execute(_statements.LOCK_QUEUE, {"p_queue": queue}).first()
        if settings is None:
            return limit, lambda claimed: None
        allowance = limit
        if settings.global_limit is not None:
            running = conn.execute(_statements.COUNT_RUNNING, {"p_queue": queue}).scalar_one()
            allowance = min(allowance, settings.global_limit - int(running))
        window = _Window(settings.window_start, settings.window_count or 0)
        rate_room = window.allowance(settings.rate_limit, settings.rate_period, settings.db_now)
        if rate_room is not None:
            allowance = min(allowance, rate_room)

        def count_starts(claimed: int) -> None:
            if rate_room is not None and claimed:
                conn.execute(
                    _statements.COUNT_STARTS,
                    {"p_queue": queue, "p_start": window.start, "p_count": window.count + claimed},
                )

        return allowance, count_starts

    def claim_limited(
        self,
        *,
        worker_id: str,
        queue: str,
        limit: int,
        lease: timedelta,
        tasks: Sequence[str] | None = None,
        keyed: bool = False,
    ) -> list[Job]:
        """Claim from a queue with a global concurrency limit and/or a rate limit.

        The queue's settings row is locked for the claim, so claimers in every process see
        each other's counts: never more than ``global_limit`` jobs of the queue run at once,
        never more than ``rate_limit`` start per ``rate_period``. ``keyed``: ``tasks`` have
        per-key limits, which hold too (see :meth:`claim_keyed`).
        """

        def work(conn: Connection) -> list[Job]:
            allowance, count_starts = self._queue_allowance(conn, queue, limit)
            if allowance <= 0:
                return []
            if keyed:
                claimed = self._claim_keyed_in(conn, worker_id, [queue], allowance, lease, tasks)
            else:
                params = self._claim_params(worker_id, [queue], allowance, tasks)
                claimed = self._claim_in(conn, params, lease)
            count_starts(len(claimed))
            return claimed

        return self.run(work, what="claim")

    def configure_queue(
        self,
        name: str,
        *,
        global_limit: int | None,
        rate_limit: int | None,
        rate_period: timedelta | None,
    ) -> None:
        """Store a queue's limits for every worker (None removes a limit)."""
        values = {
            "global_limit": global_limit,
            "rate_limit": rate_limit,
            "rate_period": rate_period.total_seconds() if rate_period else None,
        }

        def work(conn: Connection) -> None:
            changed: Any = conn.execute(
                update(_queues).where(_queues.c.name == name).values(values)
            )
            if changed.rowcount == 0:
                conn.execute(insert(_queues).values(name=name, window_count=0, **values))

        self.run(work, what="configure queue")

    def queue_settings(self) -> dict[str, dict[str, Any]]:
        """Limits of every configured queue, by name."""

        def work(conn: Connection) -> dict[str, dict[str, Any]]:
            rows = conn.execute(select(_queues))
            return {row.name: dict(row._mapping) for row in rows}

        return self.run(work, what="queue settings", read_only=True)

    # -- per-key limits ------------------------------------------------------------------

    def claim_keyed(
        self,
        *,
        worker_id: str,
        queues: Sequence[str],
        limit: int,
        lease: timedelta,
        tasks: Sequence[str],
    ) -> list[Job]:
        """Claim up to ``limit`` jobs of ``tasks`` (tasks with a ``KeyLimit``) so that each
        job's key rule holds across every worker: fewer than ``flow_limit`` running jobs of
        its key, no more than ``flow_rate`` starts per ``flow_period``, and with
        ``flow_fifo`` only the key's oldest unfinished job, while none of the key runs.

        Each key's row is locked (``SKIP LOCKED``: a key another claimer holds is left to
        it) before its running jobs are counted. Jobs of these tasks without a key (enqueued
        before the task had its rule) are claimed without limit.
        """
        if limit <= 0 or not queues or not tasks:
            return []

        def work(conn: Connection) -> list[Job]:
            return self._claim_keyed_in(conn, worker_id, queues, limit, lease, tasks)

        return self.run(work, what="claim")

    def _claim_keyed_in(
        self,
        conn: Connection,
        worker_id: str,
        queues: Sequence[str],
        limit: int,
        lease: timedelta,
        tasks: Sequence[str] | None,
    ) -> list[Job]:
        if not tasks:
            return []
        found = conn.execute(
            flow.KEYED_CANDIDATES,
            {
                "p_queues": list(queues),
                "p_tasks": sorted(tasks),
                "p_limit": max(limit * CANDIDATES_PER_SLOT, 8),
            },
        ).all()
        keys = sorted({row.flow_key for row in found if row.flow_key is not None})
        states = self._lock_keys(conn, keys) if keys else {}
        chosen: list[int] = []
        for row in found:
            if len(chosen) >= limit:
                break
            state = states.get(row.flow_key) if row.flow_key is not None else None
            if row.flow_key is None or (state is not None and _fits(row, state)):
                chosen.append(row.id)
                if state is not None:
                    state.chosen.append(row.id)
        if not chosen:
            return []
        params = self._claim_params(worker_id, queues, len(chosen), tasks)
        params["p_only"] = chosen
        claimed = self._claim_in(conn, params, lease)
        self._count_key_starts(conn, claimed, states)
        return claimed

    def _lock_keys(self, conn: Connection, keys: list[str]) -> dict[str, _KeyState]:
        """Lock the rows of ``keys`` that no other claimer holds (creating missing ones) and
        read what their limits need: running jobs, the FIFO head, the rate window."""
        existing = set(conn.execute(flow.EXISTING_KEYS, {"p_keys": keys}).scalars())
        missing = [key for key in keys if key not in existing]
        if missing:
            conn.execute(flow.new_keys(self.engine.dialect.name, missing))
        statement = flow.lock_keys(skip_locked=self.support.skip_locked)
        locked = {row.key: row for row in conn.execute(statement, {"p_keys": keys})}
        if not locked:
            return {}
        held = sorted(locked)
        running: dict[str, int] = {
            key: int(count) for key, count in conn.execute(flow.RUNNING_BY_KEY, {"p_keys": held})
        }
        heads: dict[str, int] = {
            key: int(head) for key, head in conn.execute(flow.HEADS_BY_KEY, {"p_keys": held})
        }
        return {
            key: _KeyState(
                running=int(running.get(key, 0)),
                head=heads.get(key),
                window=_Window(row.window_start, row.window_count or 0),
                now=row.db_now,
            )
            for key, row in locked.items()
        }

    def _count_key_starts(
        self, conn: Connection, claimed: list[Job], states: dict[str, _KeyState]
    ) -> None:
        started: dict[str, int] = {}
        for job in claimed:
            if job.flow_key is not None:
                started[job.flow_key] = started.get(job.flow_key, 0) + 1
        for key, count in started.items():
            state = states[key]
            if not state.rated:
                continue  # the key's jobs have no rate limit
            window = state.window
            params = {"p_key": key, "p_start": window.start, "p_count": window.count + count}
            conn.execute(flow.COUNT_KEY_STARTS, params)

    def prune_keys(self, *, idle_for: timedelta) -> int:
        """Delete key rows no unfinished job needs and whose rate window ended ``idle_for``
        ago by the database's clock."""
        params = {"p_age": -idle_for.total_seconds()}
        return self._delete_found(flow.STALE_KEYS, flow.DELETE_STALE_KEYS, "prune keys", params)


def _fits(row: Any, state: _KeyState) -> bool:
    """Whether one more job (``row``) of a locked key may start now."""
    busy = state.running + len(state.chosen)
    if row.flow_fifo and (busy > 0 or row.id != state.head):
        return False
    if row.flow_limit is not None and busy >= row.flow_limit:
        return False
    if row.flow_rate is not None:
        room = state.window.allowance(row.flow_rate, row.flow_period, state.now)
        state.rated = True
        if room is not None and len(state.chosen) >= room:
            return False
    return True
