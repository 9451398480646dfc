"""Output of the ``sqljobs`` command: rich tables for people, plain dicts for ``--json``."""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import _overview
from .._overview import STATE_ORDER
from .._secrets import redacted
from .._utils import utcnow
from ..job_logs import JobLogLine
from ..jobs import Job, JobState
from ..steps import JobStep

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from ..jobqueue import JobQueue
    from ..worker import Worker


# -- data for --json ------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def job_summary(job: Job) -> dict[str, Any]:
    last = job.last_error
    return {
        "id": job.id,
        "task": job.task,
        "queue": job.queue,
        "state": job.state.value,
        "priority": job.priority,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "args": redacted(job.args),
        "run_at": _iso(job.run_at),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "last_error": f"{last.type}: {last.message}" if last else None,
    }


def step_json(step: JobStep) -> dict[str, Any]:
    return {
        "name": step.name,
        "position": step.position,
        "state": step.state.value,
        "attempts": step.attempts,
        "duration": step.duration,
        "started_at": _iso(step.started_at),
        "finished_at": _iso(step.finished_at),
        "result": step.result,
        "error": step.error.to_json() if step.error is not None else None,
    }


def job_detail(
    job: Job, steps: Sequence[JobStep] = (), logs: Sequence[JobLogLine] = ()
) -> dict[str, Any]:
    return {
        **job_summary(job),
        "lease_owner": job.lease_owner,
        "lease_expires_at": _iso(job.lease_expires_at),
        "result": job.result,
        "progress": getattr(job, "progress", None),
        "progress_message": getattr(job, "progress_message", None),
        "errors": [e.to_json() for e in job.errors],
        "steps": [step_json(step) for step in steps],
        "logs": [
            {
                "attempt": line.attempt,
                "at": _iso(line.at),
                "level": line.level,
                "logger": line.logger,
                "message": line.message,
            }
            for line in logs
        ],
    }


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def console() -> Console:
    from rich.console import Console

    # Off a terminal rich would wrap tables at 80 columns; scripts and logs want whole lines.
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def _age(value: datetime | None) -> str:
    if value is None:
        return "-"
    delta = utcnow() - value
    if delta.total_seconds() < 0:
        return f"in {_overview.format_age(-delta)}"
    return f"{_overview.format_age(delta)} ago"


STATE_STYLES = {
    JobState.BLOCKED: "cyan",
    JobState.SCHEDULED: "magenta",
    JobState.AVAILABLE: "blue",
    JobState.RUNNING: "yellow",
    JobState.RETRYABLE: "dark_orange",
    JobState.COMPLETED: "green",
    JobState.DISCARDED: "red",
    JobState.CANCELLED: "bright_black",
}


def _state(state: JobState) -> str:
    return f"[{STATE_STYLES[state]}]{state.value}[/]"


def _escape(text: Any) -> str:
    from rich.markup import escape

    return escape(str(text))


# -- status, list, show ---------------------------------------------------------------


def render_status(jobs: JobQueue) -> RenderableType:
    from rich.console import Group
    from rich.table import Table

    view = _overview.overview(jobs)
    table = Table(title="Jobs per queue and state", title_justify="left")
    table.add_column("queue")
    for state in STATE_ORDER:
        table.add_column(_state(state), justify="right")
    table.add_column("backlog age", justify="right")
    for q in view.queues:
        backlog = q.backlog_age(view.at)
        table.add_row(
            _escape(q.queue) + (" [yellow](paused)[/]" if q.paused else ""),
            *[str(q.count(s)) if q.count(s) else "[bright_black]0[/]" for s in STATE_ORDER],
            _overview.format_age(backlog) if backlog is not None else "-",
        )
    table.add_section()
    table.add_row("[b]total[/]", *[f"[b]{view.totals[s]}[/]" for s in STATE_ORDER], "")
    recent = _overview.throughput(jobs, window=_overview.parse_age("5m"), buckets=5)
    done = {s: sum(p.get(s, 0) for p in recent.points) for s in _overview.THROUGHPUT_STATES}
    line = (
        f"last 5 minutes: {done[JobState.COMPLETED]} completed, "
        f"{done[JobState.DISCARDED]} discarded, {done[JobState.CANCELLED]} cancelled "
        f"({done[JobState.COMPLETED] / 300 * 60:.1f}/min)"
    )
    workers = Table(title="Workers", title_justify="left")
    for column in ("worker", "queues", "concurrency", "started", "heartbeat"):
        workers.add_column(column)
    for w in view.workers:
        workers.add_row(
            _escape(w["id"]),
            _escape(w["queues"]),
            str(w["concurrency"]),
            _age(w["started_at"]),
            _age(w["heartbeat_at"]),
        )
    parts: list[RenderableType] = [table, line]
    parts += [
        f"[yellow]warning:[/] {_escape(_overview.unserved_warning(q))}" for q in view.unserved
    ]
    parts.append(workers if view.workers else "no worker is running")
    return Group(*parts)


def status_json(jobs: JobQueue) -> dict[str, Any]:
    view = _overview.overview(jobs)
    return {
        "at": view.at.isoformat(),
        "queues": [
            {
                "queue": q.queue,
                "counts": {s.value: q.count(s) for s in STATE_ORDER},
                "total": q.total,
                "oldest_available_at": _iso(q.oldest_available),
                "served": q.served,
                "paused": q.paused,
            }
            for q in view.queues
        ],
        "warnings": [_overview.unserved_warning(q) for q in view.unserved],
        "totals": {s.value: n for s, n in view.totals.items()},
        "workers": [
            {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in w.items()}
            for w in view.workers
        ],
    }


def render_job_list(found: list[Job], total: int, offset: int) -> RenderableType:
    from rich.console import Group
    from rich.table import Table

    table = Table()
    for column, justify in (
        ("id", "right"),
        ("task", "left"),
        ("queue", "left"),
        ("state", "left"),
        ("attempt", "right"),
        ("created", "left"),
        ("args", "left"),
        ("last error", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for job in found:
        last = job.last_error
        args = json.dumps(redacted(job.args), ensure_ascii=False, default=str)
        table.add_row(
            str(job.id),
            _escape(job.task),
            _escape(job.queue),
            _state(job.state),
            f"{job.attempt}/{job.max_attempts}",
            _age(job.created_at),
            _escape(args if len(args) <= 60 else args[:57] + "..."),
            _escape(f"{last.type}: {last.message}"[:80]) if last else "",
        )
    shown = f"{offset + 1}-{offset + len(found)} of {total}" if found else f"0 of {total}"
    return Group(table, f"jobs {shown}")


def render_job(
    job: Job, steps: Sequence[JobStep] = (), logs: Sequence[JobLogLine] = ()
) -> RenderableType:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("job", f"{job.id}  {_escape(job.task)}")
    facts.add_row("state", _state(job.state))
    facts.add_row("queue", _escape(job.queue))
    facts.add_row("attempt", f"{job.attempt} of {job.max_attempts}")
    facts.add_row("priority", str(job.priority))
    facts.add_row("created", f"{_iso(job.created_at)} ({_age(job.created_at)})")
    facts.add_row("run at", f"{_iso(job.run_at)} ({_age(job.run_at)})")
    facts.add_row("started", f"{_iso(job.started_at) or '-'}")
    facts.add_row("finished", f"{_iso(job.finished_at) or '-'}")
    if job.lease_owner:
        facts.add_row("worker", f"{_escape(job.lease_owner)} until {_iso(job.lease_expires_at)}")
    progress = getattr(job, "progress", None)
    if progress is not None:
        message = getattr(job, "progress_message", None) or ""
        shown = f"{progress:.0%}" if isinstance(progress, (int, float)) else str(progress)
        facts.add_row("progress", _escape(f"{shown} {message}".strip()))
    parts: list[RenderableType] = [facts]
    pretty = json.dumps(redacted(job.args), indent=2, ensure_ascii=False, default=str)
    parts.append(Panel(_escape(pretty), title="args", title_align="left"))
    if job.result is not None:
        result = json.dumps(job.result, indent=2, ensure_ascii=False, default=str)
        parts.append(Panel(_escape(result), title="result", title_align="left"))
    if steps:
        parts.append(_steps_table(steps))
    if logs:
        lines = "\n".join(
            f"[dim]attempt {line.attempt} {line.at.strftime('%H:%M:%S.%f')[:-3]}[/] "
            f"[b]{_escape(line.level)}[/] {_escape(line.logger)}: {_escape(line.message)}"
            for line in logs
        )
        parts.append(Panel(lines, title=f"logs ({len(logs)} lines)", title_align="left"))
    if not job.errors:
        parts.append("no failed attempt")
    for error in reversed(job.errors):
        body = f"[b]{_escape(error.type)}[/]: {_escape(error.message)}"
        if error.traceback:
            body += "\n\n" + _escape(error.traceback.rstrip())
        parts.append(
            Panel(
                body,
                title=f"attempt {error.attempt} failed at {error.at.isoformat()}",
                title_align="left",
                border_style="red",
            )
        )
    return Group(*parts)


def _steps_table(steps: Sequence[JobStep]) -> RenderableType:
    from rich.table import Table

    table = Table(title="steps", title_justify="left")
    for column in ("#", "step", "state", "attempts", "duration", "error"):
        table.add_column(column)
    for step in steps:
        error = f"{step.error.type}: {step.error.message}"[:80] if step.error else ""
        table.add_row(
            str(step.position + 1),
            _escape(step.name),
            step.state.value,
            str(step.attempts),
            f"{step.duration:.3f}s" if step.duration is not None else "",
            _escape(error),
        )
    return table


# -- worker ---------------------------------------------------------------------------


@dataclass
class Rate:
    """Completed jobs per second over a sliding window of samples."""

    window: float = 10.0

    def __post_init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, done: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
            self._samples.popleft()
        first_at, first_done = self._samples[0]
        elapsed = now - first_at
        return (done - first_done) / elapsed if elapsed > 0 else 0.0


def worker_summary(worker: Worker, rate: float) -> dict[str, Any]:
    """Counters for the live view and the periodic summary lines (``done=N`` there; the
    final ``stopped: N completed, ...`` line has the totals)."""
    stats = worker.stats
    return {
        "running": len(worker.running_jobs),
        "done": stats.completed,
        "failed": stats.failed,
        "discarded": stats.discarded,
        "cancelled": stats.cancelled,
        "rate": round(rate, 2),
        "uptime": round(time.monotonic() - stats.started_at, 1),
    }


def summary_table(worker: Worker, summary: dict[str, Any]) -> RenderableType:
    from rich.table import Table

    table = Table(title=f"sqljobs worker {_escape(worker.id)}", title_justify="left")
    for column in ("running", "done", "failed", "discarded", "cancelled", "rate", "uptime"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{summary['running']}/{worker.concurrency}",
        f"[green]{summary['done']}[/]",
        f"[dark_orange]{summary['failed']}[/]",
        f"[red]{summary['discarded']}[/]",
        str(summary["cancelled"]),
        f"{summary['rate']:.1f}/s",
        _overview.format_age(summary["uptime"]),
    )
    return table
