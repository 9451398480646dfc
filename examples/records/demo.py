"""Drive the reference app over HTTP: ``python -m examples.records.demo [--once]``.

Serves ``examples.records.app`` with uvicorn on 127.0.0.1 (a free port) on a fresh SQLite
database, creates records and asks for a few hundred background refreshes (plus some async
checks) through the HTTP API, shows progress while the in-process worker runs them — some
fail and are retried — then prints the outcome and checks that every completed job was
applied exactly once. With ``--once`` it stops the server and exits (status 0 if all
checks passed); without, the server keeps running for you to explore until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
console = Console(highlight=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/demo", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--once", action="store_true", help="exit when the jobs are done")
    parser.add_argument("--jobs", type=int, default=300, help="refresh jobs to run (300)")
    parser.add_argument(
        "--checks", type=int, default=None, help="async check jobs (default: a fifth of --jobs)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="worker threads (4)")
    parser.add_argument(
        "--failure-rate", type=float, default=0.25, help="how often an attempt fails (0.25)"
    )
    parser.add_argument("--port", type=int, default=0, help="port to serve on (default: free)")
    parser.add_argument(
        "--database-url", default=None, help="default: a new SQLite file in a temporary directory"
    )
    parser.add_argument("--timeout", type=float, default=300, help="give up after this (s)")
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """uvicorn serving the reference app in a subprocess."""

    def __init__(self, *, port: int, env: dict[str, str], log_path: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.records.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, client: httpx.Client, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}")
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer on {self.url} within {timeout:.0f}s")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM: uvicorn finishes requests, the lifespan drains the worker."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Driver:
    """Enqueues the jobs over HTTP, 8 requests at a time, in a background thread."""

    def __init__(self, client: httpx.Client, record_ids: list[int], checks: int) -> None:
        self.client = client
        self.record_ids = record_ids
        self.checks = checks
        self.enqueued = 0
        self.error: BaseException | None = None
        self.elapsed = 0.0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="demo-driver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def _post(self, path: str) -> None:
        self.client.post(path).raise_for_status()
        with self._lock:
            self.enqueued += 1

    def _one(self, index: int) -> None:
        record_id = self.record_ids[index]
        self._post(f"/records/{record_id}/refresh")
        if index < self.checks:
            self._post(f"/records/{record_id}/check")

    def _run(self) -> None:
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(self._one, range(len(self.record_ids))))
        except BaseException as exc:
            self.error = exc
        self.elapsed = time.monotonic() - started


def watch(client: httpx.Client, driver: Driver, total: int, timeout: float) -> dict[str, Any]:
    """Show progress until every job finished; return the final /stats."""
    deadline = time.monotonic() + timeout
    live = console.is_terminal
    columns = (
        TextColumn("{task.fields[label]:<9}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not live) as progress:
        sent = progress.add_task("", total=total, label="enqueued")
        bar = progress.add_task("", total=total, label="finished")
        next_line = time.monotonic()
        while True:
            if driver.error is not None:
                raise RuntimeError(f"enqueueing over HTTP failed: {driver.error!r}")
            stats: dict[str, Any] = client.get("/stats").raise_for_status().json()
            states = stats["jobs"]
            done = sum(states.get(s, 0) for s in ("completed", "discarded", "cancelled"))
            status = (
                f"running {states.get('running', 0)}, "
                f"waiting to retry {states.get('retryable', 0)}, "
                f"failed attempts {stats['failed_attempts']}, "
                f"discarded {states.get('discarded', 0)}"
            )
            progress.update(sent, completed=driver.enqueued, description="POST /records/{id}/…")
            if driver.enqueued >= total:
                progress.stop_task(sent)
            progress.update(bar, completed=done, description=status)
            finished = done >= total and driver.enqueued >= total
            if not live and (finished or time.monotonic() >= next_line):
                next_line = time.monotonic() + 1.0
                console.print(
                    f"enqueued {driver.enqueued}/{total}, finished {done}/{total}: {status}"
                )
            if finished:
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done} of {total} jobs finished within {timeout:.0f}s")
            time.sleep(0.2)


def report(stats: dict[str, Any], *, refreshes: int, checks: int, elapsed: float) -> bool:
    states, records = stats["jobs"], stats["records"]
    total = refreshes + checks
    console.print(
        f"\n[bold]{total} jobs[/] enqueued over HTTP: {refreshes} refreshes (sync task), "
        f"{checks} checks (async task)"
    )
    table = Table(show_header=False, box=box.SIMPLE, padding=(0, 1))
    table.add_column()
    table.add_column(justify="right")
    table.add_row("completed", str(states.get("completed", 0)))
    table.add_row("  after one or more retries", str(stats["retried_jobs"]))
    table.add_row("failed attempts, rolled back", str(stats["failed_attempts"]))
    table.add_row("discarded (4 attempts failed)", str(states.get("discarded", 0)))
    table.add_row("time", f"{elapsed:.1f}s")
    table.add_row("throughput", f"{total / elapsed:.0f} jobs/s")
    console.print(table)

    discarded = states.get("discarded", 0)
    checks_ok = records["checks_applied"] == checks
    refresh_ok = records["refreshes_applied"] == records["fresh"] == refreshes - discarded
    console.print(
        f"{'[green]ok' if refresh_ok else '[red]FAILED'}[/]  every completed refresh was applied "
        f"exactly once: {records['refreshes_applied']} refreshes on {records['fresh']} fresh "
        f"records, {discarded} discarded job(s) left no trace"
    )
    console.print(
        f"{'[green]ok' if checks_ok else '[red]FAILED'}[/]  every async check was applied "
        f"exactly once: {records['checks_applied']} of {checks}"
    )
    return bool(refresh_ok and checks_ok)


def describe(record: dict[str, Any]) -> str:
    """One line about a record and its job, as ``GET /records/{id}`` shows them."""
    job = record["job"] or {}
    errors = ", ".join(f"#{e['attempt']} {e['type'].rsplit('.', 1)[-1]}" for e in job["errors"])
    return (
        f"GET /records/{record['id']}: status {record['status']}, refreshed "
        f"{record['refresh_count']}x; its job {job.get('id')} is {job.get('state')} after "
        f"{job.get('attempt')} attempt(s){f' (failed: {errors})' if errors else ''}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checks = args.checks if args.checks is not None else args.jobs // 5
    if not 0 <= checks <= args.jobs or args.jobs < 1:
        console.print("[red]--jobs must be at least 1 and --checks between 0 and --jobs")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="sqljobs-demo-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'records.db'}"
    port = args.port or free_port()
    env = {
        "DATABASE_URL": database_url,
        "RECORDS_FAILURE_RATE": str(args.failure_rate),
        "SQLJOBS_CONCURRENCY": str(args.concurrency),
        "SQLJOBS_POLL_INTERVAL": "0.2",
    }
    console.print(f"[bold]sqljobs demo[/]: the records app on {database_url}")
    server = Server(port=port, env=env, log_path=workdir / "server.log")
    ok = False
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            server.wait_ready(client)
            console.print(
                f"serving on {server.url} (API docs: {server.url}/docs); enqueueing "
                f"{args.jobs} refreshes and {checks} async checks over HTTP, "
                f"failure rate {args.failure_rate:.0%}, worker concurrency {args.concurrency}"
            )
            created = client.post("/records/batch", json={"count": args.jobs})
            record_ids: list[int] = created.raise_for_status().json()["ids"]
            started = time.monotonic()
            driver = Driver(client, record_ids, checks)
            driver.start()
            stats = watch(client, driver, args.jobs + checks, args.timeout)
            elapsed = time.monotonic() - started
            driver.join()
            console.print(
                f"{args.jobs + checks} requests took {driver.elapsed:.1f}s; the worker ran "
                "jobs meanwhile, each picked up right after its request committed"
            )
            ok = report(stats, refreshes=args.jobs, checks=checks, elapsed=elapsed)
            console.print(describe(client.get(f"/records/{record_ids[0]}").json()))
            if not args.once:
                console.print(
                    f"\nThe app is still serving on {server.url}. Try:\n"
                    f"  curl -X POST {server.url}/records/1/refresh\n"
                    f"  curl {server.url}/records/1\n"
                    f"  curl {server.url}/stats\n"
                    "Ctrl-C stops it (the worker drains first)."
                )
                try:
                    server.proc.wait()
                except KeyboardInterrupt:
                    console.print("stopping…")
    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        console.print(f"[red]demo failed: {exc}[/]\nserver log ({server.log_path}):")
        console.print(server.log_tail(), markup=False)
        ok = False
    finally:
        code = server.stop()
        if code not in (0, None, -signal.SIGTERM):
            console.print(f"[red]the server exited with status {code}[/]")
            console.print(server.log_tail(), markup=False)
            ok = False
    if ok and args.database_url is None:
        shutil.rmtree(workdir, ignore_errors=True)
    elif not ok:
        console.print(f"database and server log kept in {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
