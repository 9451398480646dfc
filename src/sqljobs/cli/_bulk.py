"""The bulk commands of ``sqljobs``: ``jobs retry|cancel|delete`` by filter (a dry-run count,
then a confirmation) and ``queues pause|resume|list``."""

from __future__ import annotations

from typing import Any

from .. import _overview
from .._bulk_admin import BulkResult
from .._utils import utcnow
from ..jobs import JobState
from ._loading import AGES, EXIT_USAGE, STATES, CliError, reporting
from ._loading import load_for_command as _load
from ._output import print_json

try:
    import typer
except ImportError:  # pragma: no cover - exercised only without the extra
    typer = None  # type: ignore[assignment]

_VERBS = {
    "retry": ("retry", "retried"),
    "cancel": ("cancel", "cancelled"),
    "delete": ("delete", "deleted"),
}
_DEFAULTS = {
    "retry": "discarded and cancelled",
    "cancel": "scheduled, available and retryable",
    "delete": "completed, discarded and cancelled",
}


def _plural(n: int) -> str:
    return f"{n} job{'s' if n != 1 else ''}"


def _report(result: BulkResult) -> str:
    verb, done = _VERBS[result.action]
    if result.dry_run:
        return f"{_plural(result.matched)} match: {verb} them with --yes"
    lines = [f"{done} {_plural(len(result.changed))} in {result.batches} batch(es)"]
    if len(result.changed) + len(result.skipped) < result.matched:
        gone = result.matched - len(result.changed) - len(result.skipped)
        lines.append(f"{_plural(gone)} no longer matched when reached (claimed or finished)")
    lines += [f"skipped job {job_id}: {why}" for job_id, why in sorted(result.skipped.items())]
    return "\n".join(lines)


def add_bulk_commands(app: Any, jobs_app: Any, app_option: Any, json_option: Any) -> None:
    """Register the bulk and queue commands on the ``sqljobs`` app and its ``jobs`` group."""
    for action in ("retry", "cancel", "delete"):
        _add_bulk_command(jobs_app, action, app_option, json_option)

    queues_app = typer.Typer(help="Pause, resume and list queues.", no_args_is_help=True)
    app.add_typer(queues_app, name="queues")

    @queues_app.command("pause")
    def pause(
        name: str = typer.Argument(..., metavar="QUEUE"), app_path: str = app_option()
    ) -> None:
        """Stop every worker claiming this queue's jobs (within a poll); enqueues go on."""
        with reporting():
            _load(app_path).pause_queue(name)
        typer.echo(f"queue {name!r} paused: workers stop claiming it within one poll")

    @queues_app.command("resume")
    def resume(
        name: str = typer.Argument(..., metavar="QUEUE"), app_path: str = app_option()
    ) -> None:
        """Let workers claim this queue's jobs again."""
        with reporting():
            _load(app_path).resume_queue(name)
        typer.echo(f"queue {name!r} resumed")

    @queues_app.command("list")
    def list_queues(app_path: str = app_option(), as_json: bool = json_option()) -> None:
        """Every queue with its waiting and running jobs, and whether it is paused."""
        with reporting():
            jobs = _load(app_path)
            view = _overview.overview(jobs)
            paused = set(jobs.paused_queues())
        rows = [
            {
                "queue": q.queue,
                "paused": q.queue in paused,
                "waiting": sum(q.count(s) for s in _overview.WAITING_STATES),
                "running": q.count(JobState.RUNNING),
            }
            for q in view.queues
        ]
        rows += [
            {"queue": name, "paused": True, "waiting": 0, "running": 0}
            for name in sorted(paused - {q.queue for q in view.queues})
        ]
        if as_json:
            print_json(rows)
            return
        for row in rows:
            flag = "paused" if row["paused"] else "active"
            typer.echo(
                f"{row['queue']}\t{flag}\twaiting {row['waiting']}\trunning {row['running']}"
            )


def _add_bulk_command(jobs_app: Any, action: str, app_option: Any, json_option: Any) -> None:
    verb = _VERBS[action][0]

    def command(
        app_path: str = app_option(),
        state: list[str] | None = typer.Option(  # noqa: B008 (typer reads it at definition)
            None,
            "--state",
            "-s",
            help=f"repeat for several (default: {_DEFAULTS[action]}): {STATES}",
        ),
        queue: str = typer.Option(None, "--queue", "-q"),
        task: str = typer.Option(None, "--task", "-t"),
        error_type: str = typer.Option(
            None, "--error-type", "-e", help="the type of the job's last error, e.g. SMTPError"
        ),
        older_than: str = typer.Option(None, help=f"created at least this long ago: {AGES}"),
        newer_than: str = typer.Option(None, help=f"created at most this long ago: {AGES}"),
        dry_run: bool = typer.Option(False, "--dry-run", help="only count the matching jobs"),
        yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
        batch_size: int = typer.Option(200, min=1, max=1000, help="jobs per transaction"),
        as_json: bool = json_option(),
    ) -> None:
        with reporting():
            now = utcnow()
            where: dict[str, Any] = {
                "state": state or None,
                "queue": queue,
                "task": task,
                "error_type": error_type,
                "created_before": now - _overview.parse_age(older_than) if older_than else None,
                "created_after": now - _overview.parse_age(newer_than) if newer_than else None,
                "batch_size": batch_size,
            }
            jobs = _load(app_path)
            count = jobs.bulk(action, dry_run=True, **where)  # type: ignore[arg-type]
            if dry_run or count.matched == 0:
                result = count
            else:
                if not yes and as_json:
                    raise CliError(
                        f"{_plural(count.matched)} match; --json does not prompt: add --yes to "
                        f"{verb} them, or --dry-run to count only",
                        EXIT_USAGE,
                    )
                if not yes:
                    typer.confirm(f"{verb} {_plural(count.matched)}?", abort=True)
                result = jobs.bulk(action, **where)  # type: ignore[arg-type]
        if as_json:
            print_json(result.to_json())
        else:
            typer.echo(_report(result))

    command.__doc__ = (
        f"{verb.capitalize()} every job matching the filter, in batches (--dry-run: only count; "
        f"asks first unless --yes). Default states: {_DEFAULTS[action]}."
    )
    jobs_app.command(action)(command)
