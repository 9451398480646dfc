"""The ``sqljobs`` command (extra ``sqljobs[cli]``).

``sqljobs worker myapp.jobs:jobs --concurrency 8`` runs a worker until SIGTERM or Ctrl-C: it
stops claiming, lets running jobs finish within ``--grace`` seconds, and gives the rest back
to the queue. A second Ctrl-C skips the wait.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from ._utils import import_object
from .exceptions import SqljobsError
from .jobqueue import JobQueue

try:
    import typer
except ImportError:  # pragma: no cover - exercised only without the extra
    typer = None  # type: ignore[assignment]

APP_ENV = "SQLJOBS_APP"
APP_HELP = f"module:attribute of your JobQueue (default: ${APP_ENV})"
#: Exit codes scripts can rely on.
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def load_queue(path: str | None) -> JobQueue:
    """Find the :class:`JobQueue` named by ``module:attribute`` (or ``$SQLJOBS_APP``)."""
    target = path or os.environ.get(APP_ENV)
    if not target:
        raise SqljobsError(
            f"say where your JobQueue is: pass --app module:attribute or set {APP_ENV}"
        )
    sys.path.insert(0, os.getcwd())
    try:
        obj: Any = import_object(target)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SqljobsError(f"cannot import {target!r}: {exc}") from exc
    if not isinstance(obj, JobQueue):
        raise SqljobsError(f"{target!r} is a {type(obj).__name__}, not a sqljobs.JobQueue")
    return obj


def run_worker(
    jobs: JobQueue,
    *,
    concurrency: int,
    queues: list[str] | None,
    grace: float,
    poll_interval: float,
    lease: float,
) -> int:
    worker = jobs.worker(
        concurrency=concurrency,
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
        f"concurrency {concurrency}",
        flush=True,
    )
    while not stop_requested.wait(0.5):
        if worker.stopped:
            break
    worker.stop()
    jobs.close()
    print(f"sqljobs worker {worker.id} stopped: {worker.stats}", flush=True)
    return EXIT_OK


def _build_app() -> Any:
    app = typer.Typer(
        help="Durable background jobs in your own database.",
        no_args_is_help=True,
        add_completion=False,
    )

    @app.command()
    def worker(
        app_path: str = typer.Argument(
            None, metavar="APP", help="module:attribute of the JobQueue"
        ),
        concurrency: int = typer.Option(4, "--concurrency", "-c", min=1),
        queues: str = typer.Option("", "--queues", "-q", help="comma-separated; default: all"),
        grace: float = typer.Option(30.0, help="seconds running jobs get to finish on stop"),
        poll_interval: float = typer.Option(0.5, help="seconds between polls when idle"),
        lease: float = typer.Option(30.0, help="seconds a job's lease lasts between heartbeats"),
        log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR"),
    ) -> None:
        """Run a worker until SIGTERM / Ctrl-C."""
        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        try:
            jobs = load_queue(app_path)
            code = run_worker(
                jobs,
                concurrency=concurrency,
                queues=[q.strip() for q in queues.split(",") if q.strip()] or None,
                grace=grace,
                poll_interval=poll_interval,
                lease=lease,
            )
        except SqljobsError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_ERROR) from None
        raise typer.Exit(code)

    @app.command("create-schema")
    def create_schema(
        app_path: str = typer.Argument(
            None, metavar="APP", help="module:attribute of the JobQueue"
        ),
    ) -> None:
        """Create the sqljobs tables (use Alembic for production schemas)."""
        try:
            load_queue(app_path).create_schema()
        except SqljobsError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_ERROR) from None
        typer.echo("sqljobs tables are ready")

    return app


def main() -> None:
    if typer is None:
        sys.stderr.write("the sqljobs command needs its extra: pip install 'sqljobs[cli]'\n")
        raise SystemExit(EXIT_USAGE)
    _build_app()()


if __name__ == "__main__":  # pragma: no cover
    main()
