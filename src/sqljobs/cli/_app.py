"""The commands of ``sqljobs`` (typer app)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from .. import _logging, _overview
from .._utils import utcnow
from ..jobqueue import JobQueue
from ..jobs import Job, JobState
from ..store import JobFilters
from ._bulk import add_bulk_commands
from ._loading import (
    AGES,
    APP_ENV,
    APP_HELP,
    EXIT_OK,
    EXIT_USAGE,
    STATES,
    CliError,
    fail,
    reporting,
)
from ._loading import load_for_command as _load
from ._output import (
    console,
    job_detail,
    job_summary,
    print_json,
    render_job,
    render_job_list,
    render_status,
    status_json,
)
from ._run_worker import run_worker

try:
    import typer
except ImportError:  # pragma: no cover - exercised only without the extra
    typer = None  # type: ignore[assignment]


def _build_app() -> Any:
    app = typer.Typer(
        help="Durable background jobs in your own database: run workers, see and steer the "
        "queue. Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 refused by job state.",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
    )
    jobs_app = typer.Typer(
        help="List and inspect jobs; retry, cancel or delete every job matching a filter.",
        no_args_is_help=True,
    )
    app.add_typer(jobs_app, name="jobs")

    def app_option() -> Any:
        return typer.Option(None, "--app", "-a", help=APP_HELP, envvar=APP_ENV, show_envvar=False)

    def json_option() -> Any:
        return typer.Option(False, "--json", help="machine-readable output")

    from ._graphs import add_graph_commands  # imports typer, like this function

    add_graph_commands(app, app_option, json_option)

    @app.command()
    def worker(
        app_path: str = typer.Argument(
            None, metavar="[APP]", help="module:attribute of the JobQueue (or --app)"
        ),
        app_option_value: str = typer.Option(
            None, "--app", "-a", help=APP_HELP, envvar=APP_ENV, show_envvar=False
        ),
        concurrency: int = typer.Option(4, "--concurrency", "-c", min=1),
        prefetch: int = typer.Option(
            None, min=0, help="jobs claimed ahead of free executors (default: automatic)"
        ),
        queues: str = typer.Option("", "--queues", "-q", help="comma-separated; default: all"),
        grace: float = typer.Option(30.0, help="seconds running jobs get to finish on stop"),
        poll_interval: float = typer.Option(0.5, help="seconds between polls when idle"),
        lease: float = typer.Option(30.0, help="seconds a job's lease lasts between heartbeats"),
        prune_after: str = typer.Option(
            "7d", help="delete finished jobs older than this (1h, 7d, ...), or 'never'"
        ),
        prune_interval: float = typer.Option(
            300.0, min=0.01, help="seconds between prunes (the first after at most 10 s)"
        ),
        log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR"),
        log_format: str = typer.Option(
            "text",
            help="text, or json: one JSON object per line with job_id, task, attempt, "
            "outcome and duration as fields",
        ),
        live: bool = typer.Option(
            None, "--live/--no-live", help="live summary (default: when stdout is a terminal)"
        ),
        summary_interval: float = typer.Option(
            60.0, help="without --live, print a summary line every N seconds (0: never)"
        ),
    ) -> None:
        """Run a worker until SIGTERM / Ctrl-C."""
        if log_format not in ("text", "json"):
            fail(f"--log-format must be text or json, not {log_format!r}", EXIT_USAGE)
        if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            fail(f"--log-level must be DEBUG, INFO, WARNING or ERROR, not {log_level!r}", 2)
        show_live = sys.stdout.isatty() if live is None else live
        live_console = console() if show_live else None
        if show_live and log_format == "text":
            from rich.logging import RichHandler

            logging.basicConfig(
                level=log_level.upper(),
                format="%(name)s: %(message)s",
                handlers=[RichHandler(console=live_console, show_path=False)],
                force=True,
            )
        else:
            _logging.configure(log_level, json_lines=log_format == "json")
        with reporting():
            keep_for = _prune_after(prune_after)
            jobs = _load(app_path or app_option_value)
            code = run_worker(
                jobs,
                concurrency=concurrency,
                prefetch=prefetch,
                queues=[q.strip() for q in queues.split(",") if q.strip()] or None,
                grace=grace,
                poll_interval=poll_interval,
                lease=lease,
                prune_after=keep_for,
                prune_interval=prune_interval,
                live=show_live,
                summary_interval=summary_interval,
                console=live_console,
            )
        raise typer.Exit(code)

    @app.command("create-schema")
    def create_schema(
        app_path: str = typer.Argument(
            None, metavar="[APP]", help="module:attribute of the JobQueue (or --app)"
        ),
        app_option_value: str = app_option(),
    ) -> None:
        """Create the sqljobs tables (use Alembic for production schemas)."""
        with reporting():
            _load(app_path or app_option_value).create_schema()
        typer.echo("sqljobs tables are ready")

    @app.command()
    def status(app_path: str = app_option(), as_json: bool = json_option()) -> None:
        """Jobs per queue and state, backlog age, recent throughput and live workers."""
        with reporting():
            jobs = _load(app_path)
            if as_json:
                print_json(status_json(jobs))
            else:
                console().print(render_status(jobs))

    @jobs_app.command("list")
    def list_jobs(
        app_path: str = app_option(),
        queue: str = typer.Option(None, "--queue", "-q"),
        task: str = typer.Option(None, "--task", "-t"),
        state: Annotated[
            list[str] | None, typer.Option("--state", "-s", help=f"repeat for several: {STATES}")
        ] = None,
        older_than: str = typer.Option(None, help=f"created at least this long ago: {AGES}"),
        newer_than: str = typer.Option(None, help=f"created at most this long ago: {AGES}"),
        limit: int = typer.Option(50, min=1, max=10000),
        offset: int = typer.Option(0, min=0),
        as_json: bool = json_option(),
    ) -> None:
        """Jobs, newest first, filtered by queue, task, state and age."""
        with reporting():
            states = [_parse_state(s) for s in state or []]
            now = utcnow()
            filters = JobFilters(
                states=states or None,
                queue=queue,
                task=task,
                created_before=now - _overview.parse_age(older_than) if older_than else None,
                created_after=now - _overview.parse_age(newer_than) if newer_than else None,
            )
            jobs = _load(app_path)
            found, total = jobs.store.search_jobs(filters, limit=limit, offset=offset)
            if as_json:
                print_json(
                    {
                        "items": [job_summary(j) for j in found],
                        "total": total,
                        "limit": limit,
                        "offset": offset,
                    }
                )
            else:
                console().print(render_job_list(found, total, offset))

    @jobs_app.command("show")
    def show(
        job_id: int = typer.Argument(..., metavar="ID"),
        app_path: str = app_option(),
        as_json: bool = json_option(),
    ) -> None:
        """One job: arguments, attempts, errors with tracebacks, progress, result, its
        durable steps (name, state, attempts, duration, error) and its attempts' logs."""
        with reporting():
            jobs = _load(app_path)
            job = jobs.get(job_id)
            steps = jobs.steps(job_id)
            logs = jobs.logs(job_id)
            if as_json:
                print_json(job_detail(job, steps, logs))
            else:
                console().print(render_job(job, steps, logs))

    def each_job(
        job_ids: list[int], app_path: str | None, action: Callable[[JobQueue, int], Job], verb: str
    ) -> None:
        with reporting():
            jobs = _load(app_path)
        worst = EXIT_OK
        for job_id in job_ids:
            try:
                with reporting():
                    job = action(jobs, job_id)
                    typer.echo(f"job {job_id} {verb}: now {job.state.value}")
            except typer.Exit as exit_:
                worst = max(worst, int(exit_.exit_code))
        raise typer.Exit(worst)

    @app.command()
    def retry(
        job_ids: Annotated[list[int], typer.Argument(metavar="ID...")],
        app_path: str = app_option(),
    ) -> None:
        """Run jobs again now (discarded, cancelled, waiting or completed; not running)."""
        each_job(job_ids, app_path, _overview.retry_job, "retried")

    @app.command()
    def cancel(
        job_ids: Annotated[list[int], typer.Argument(metavar="ID...")],
        app_path: str = app_option(),
    ) -> None:
        """Cancel jobs that have not finished; a running job can no longer commit."""
        each_job(job_ids, app_path, _overview.cancel_job, "cancelled")

    @app.command()
    def prune(
        older_than: str = typer.Option(..., help="finished at least this long ago: 1h, 7d"),
        state: Annotated[
            list[str] | None,
            typer.Option("--state", "-s", help="completed, discarded or cancelled (default: all)"),
        ] = None,
        app_path: str = app_option(),
        as_json: bool = json_option(),
    ) -> None:
        """Delete finished jobs older than --older-than."""
        with reporting():
            age = _overview.parse_age(older_than)
            states = [_parse_state(s) for s in state or []] or None
            deleted = _load(app_path).prune(older_than=age, states=states)
            if as_json:
                print_json({"deleted": deleted})
            else:
                typer.echo(f"deleted {deleted} finished job{'s' if deleted != 1 else ''}")

    @app.command()
    def enqueue(
        task: str = typer.Argument(..., help="the task's registered name"),
        args: str = typer.Option("{}", "--args", help="keyword arguments as a JSON object"),
        queue: str = typer.Option(None, "--queue", "-q", help="default: the task's queue"),
        priority: int = typer.Option(None, help="default: the task's priority"),
        delay: str = typer.Option(None, help="run after this long: 30s, 15m, 2h"),
        app_path: str = app_option(),
        as_json: bool = json_option(),
    ) -> None:
        """Enqueue a job for a registered task, e.g. --args '{"record_id": 1}'."""
        with reporting():
            try:
                kwargs = json.loads(args)
            except json.JSONDecodeError as exc:
                raise CliError(f"--args is not valid JSON: {exc}", EXIT_USAGE) from None
            if not isinstance(kwargs, dict):
                raise CliError("--args must be a JSON object of keyword arguments", EXIT_USAGE)
            wait = _overview.parse_age(delay) if delay else None
            jobs = _load(app_path)
            job_id = jobs.registry[task].enqueue(
                delay=wait, queue=queue, priority=priority, **kwargs
            )
            if as_json:
                print_json(job_summary(jobs.get(job_id)))
            else:
                typer.echo(f"enqueued job {job_id}")

    add_bulk_commands(app, jobs_app, app_option, json_option)
    return app


def _parse_state(text: str) -> JobState:
    try:
        return JobState(text.strip().lower())
    except ValueError:
        raise CliError(
            f"unknown state {text!r}; choose from {', '.join(s.value for s in JobState)}",
            EXIT_USAGE,
        ) from None


def _prune_after(text: str) -> timedelta | None:
    if text.strip().lower() in ("never", "none", "off"):
        return None
    try:
        return _overview.parse_age(text)
    except ValueError as exc:
        raise CliError(f"--prune-after: {exc}, or 'never' to keep them", EXIT_USAGE) from None


def main() -> None:
    if typer is None:
        sys.stderr.write("the sqljobs command needs its extra: pip install 'sqljobs[cli]'\n")
        raise SystemExit(EXIT_USAGE)
    _build_app()()
