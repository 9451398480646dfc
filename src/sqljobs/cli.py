"""The ``sqljobs`` command (extra ``sqljobs[cli]``): run workers, see and steer the queue.

Every command finds the application's :class:`~sqljobs.JobQueue` from ``--app
module:attribute`` or ``$SQLJOBS_APP``::

    sqljobs worker myapp.jobs:jobs --concurrency 8      # until SIGTERM / Ctrl-C
    sqljobs status                                      # counts per queue and state
    sqljobs jobs list --state discarded --newer-than 1h
    sqljobs jobs show 42                                # args, attempts, errors, result
    sqljobs retry 42 / cancel 42 / prune --older-than 7d
    sqljobs enqueue myapp.tasks.refresh --args '{"record_id": 1}'

Output is a table for people and ``--json`` for scripts. Exit codes scripts can rely on:
0 success, 1 failure (e.g. the database is unreachable), 2 usage error (bad option, bad
JSON, ``--app`` that cannot be loaded), 3 no such job or task, 4 refused because of the
job's state (retrying a running job, cancelling a finished one). Errors go to stderr as
``error: <message>``.

``worker`` stops claiming on SIGTERM or Ctrl-C, lets running jobs finish within ``--grace``
seconds, and gives the rest back to the queue; a second Ctrl-C skips the wait. On a terminal
it shows a live summary (running, done, failed, rate); otherwise it prints a summary line every
``--summary-interval`` seconds.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

from . import _logging, _overview
from ._cli_output import (
    Rate,
    console,
    job_detail,
    job_summary,
    print_json,
    render_job,
    render_job_list,
    render_status,
    status_json,
    summary_table,
    worker_summary,
)
from ._overview import ActionRefused
from ._utils import import_object, utcnow
from .exceptions import (
    JobNotFound,
    SerializationError,
    SqljobsError,
    TaskNotRegistered,
)
from .jobqueue import JobQueue
from .jobs import Job, JobState
from .store import JobFilters

try:
    import typer
except ImportError:  # pragma: no cover - exercised only without the extra
    typer = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from rich.console import Console

    from .worker import Worker

APP_ENV = "SQLJOBS_APP"
APP_HELP = f"module:attribute of your JobQueue (default: ${APP_ENV})"
STATES = ", ".join(s.value for s in JobState)
AGES = "30s, 15m, 2h, 7d"
#: Exit codes scripts can rely on.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_REFUSED = 0, 1, 2, 3, 4


class CliError(Exception):
    """A failure to report as ``error: message`` with an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def load_queue(path: str | None) -> JobQueue:
    """Find the :class:`JobQueue` named by ``module:attribute`` (or ``$SQLJOBS_APP``)."""
    target = path or os.environ.get(APP_ENV)
    if not target:
        raise SqljobsError(
            f"say where your JobQueue is: pass --app module:attribute or set {APP_ENV}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = import_object(target)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SqljobsError(f"cannot import {target!r}: {exc}") from exc
    if not isinstance(obj, JobQueue):
        raise SqljobsError(f"{target!r} is a {type(obj).__name__}, not a sqljobs.JobQueue")
    return obj


def _load(path: str | None) -> JobQueue:
    try:
        return load_queue(path)
    except SqljobsError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


@contextmanager
def _reporting() -> Iterator[None]:
    """Turn sqljobs errors into ``error: ...`` on stderr and the documented exit code."""
    try:
        yield
    except CliError as exc:
        _fail(str(exc), exc.code)
    except JobNotFound as exc:
        _fail(str(exc), EXIT_NOT_FOUND)
    except TaskNotRegistered as exc:
        _fail(str(exc), EXIT_NOT_FOUND)
    except ActionRefused as exc:
        _fail(str(exc), EXIT_REFUSED)
    except (SerializationError, ValueError) as exc:
        _fail(str(exc), EXIT_USAGE)
    except SqljobsError as exc:
        _fail(str(exc), EXIT_ERROR)


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def run_worker(
    jobs: JobQueue,
    *,
    concurrency: int,
    queues: list[str] | None,
    grace: float,
    prefetch: int | None = None,
    poll_interval: float,
    lease: float,
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


def _build_app() -> Any:
    app = typer.Typer(
        help="Durable background jobs in your own database: run workers, see and steer the "
        "queue. Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 refused by job state.",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
    )
    jobs_app = typer.Typer(help="List and inspect jobs.", no_args_is_help=True)
    app.add_typer(jobs_app, name="jobs")

    def app_option() -> Any:
        return typer.Option(None, "--app", "-a", help=APP_HELP, envvar=APP_ENV, show_envvar=False)

    def json_option() -> Any:
        return typer.Option(False, "--json", help="machine-readable output")

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
            _fail(f"--log-format must be text or json, not {log_format!r}", EXIT_USAGE)
        if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            _fail(f"--log-level must be DEBUG, INFO, WARNING or ERROR, not {log_level!r}", 2)
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
        with _reporting():
            jobs = _load(app_path or app_option_value)
            code = run_worker(
                jobs,
                concurrency=concurrency,
                prefetch=prefetch,
                queues=[q.strip() for q in queues.split(",") if q.strip()] or None,
                grace=grace,
                poll_interval=poll_interval,
                lease=lease,
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
        with _reporting():
            _load(app_path or app_option_value).create_schema()
        typer.echo("sqljobs tables are ready")

    @app.command()
    def status(app_path: str = app_option(), as_json: bool = json_option()) -> None:
        """Jobs per queue and state, backlog age, recent throughput and live workers."""
        with _reporting():
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
        with _reporting():
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
        """One job: arguments, attempts, errors with tracebacks, progress and result."""
        with _reporting():
            job = _load(app_path).get(job_id)
            if as_json:
                print_json(job_detail(job))
            else:
                console().print(render_job(job))

    def each_job(
        job_ids: list[int], app_path: str | None, action: Callable[[JobQueue, int], Job], verb: str
    ) -> None:
        with _reporting():
            jobs = _load(app_path)
        worst = EXIT_OK
        for job_id in job_ids:
            try:
                with _reporting():
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
        with _reporting():
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
        with _reporting():
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

    return app


def _parse_state(text: str) -> JobState:
    try:
        return JobState(text.strip().lower())
    except ValueError:
        raise CliError(
            f"unknown state {text!r}; choose from {', '.join(s.value for s in JobState)}",
            EXIT_USAGE,
        ) from None


def main() -> None:
    if typer is None:
        sys.stderr.write("the sqljobs command needs its extra: pip install 'sqljobs[cli]'\n")
        raise SystemExit(EXIT_USAGE)
    _build_app()()


if __name__ == "__main__":  # pragma: no cover
    main()
