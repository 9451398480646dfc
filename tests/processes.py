"""Real ``python -m sqljobs worker`` processes for tests, and the fixture that always reaps them.

One class serves every suite that runs worker processes (reliability, acceptance, the CLI's
own tests): the process's stdout and stderr go to files under the test's ``tmp_path`` (a pipe
nobody reads would block a chatty worker), the app's database comes from
``SQLJOBS_TEST_DATABASE_URL``, and a test that fails half way still leaves no process behind.

    @pytest.fixture
    def workers(db_url: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
        with WorkerProcesses(db_url, tmp_path, app="tests.acceptance.app:jobs") as started:
            yield started

    def test_x(workers: WorkerProcesses) -> None:
        worker = workers.start("--concurrency", "2")
        ...
        assert worker.stop() == 0, worker.output()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    """One ``python -m sqljobs worker APP ARGS...`` process bound to ``db_url``.

    ``app`` None leaves the app to ``--app`` / ``SQLJOBS_APP`` (for tests of how the CLI
    finds it). With ``separate_stderr``, stderr goes to its own file (:meth:`errors`);
    otherwise both streams share :meth:`output`.
    """

    def __init__(
        self,
        app: str | None,
        *args: str,
        db_url: str,
        log: Path,
        env: dict[str, str] | None = None,
        separate_stderr: bool = False,
    ) -> None:
        self.log = log
        self.error_log = log.with_suffix(".err") if separate_stderr else log
        self.terminated = False
        environment = {
            **os.environ,
            "SQLJOBS_TEST_DATABASE_URL": db_url,
            "PYTHONPATH": str(ROOT),
            # A crash (a signal other than the tests' own) prints every thread's stack.
            "PYTHONFAULTHANDLER": "1",
            **(env or {}),
        }
        command = [sys.executable, "-m", "sqljobs", "worker", *([app] if app else []), *args]
        with log.open("ab") as out, self.error_log.open("ab") as err:
            self.proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT if not separate_stderr else err,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        """What the process wrote to stdout (and stderr, unless kept apart) so far."""
        return self.log.read_text(errors="replace")

    def errors(self) -> str:
        """What the process wrote to stderr so far (the same as output() unless separate)."""
        return self.error_log.read_text(errors="replace")

    def sigkill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def sigterm(self) -> None:
        """One SIGTERM only: a second one skips the grace period, and one that arrives
        while the interpreter shuts down ends the process with -15."""
        if self.proc.poll() is None and not self.terminated:
            self.terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM, then wait for the process to exit; returns its exit code."""
        self.sigterm()
        return self.wait(timeout)

    def wait(self, timeout: float = 90) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


class WorkerProcesses:
    """Starts worker processes of ``app`` (``module:attribute``; None: the CLI finds it) with
    ``args`` first on every command line; as a context manager, kills the survivors at exit."""

    def __init__(self, db_url: str, tmp_path: Path, *args: str, app: str | None = None) -> None:
        self.db_url = db_url
        self.tmp_path = tmp_path
        self.app = app
        self.args = args
        self.started: list[WorkerProcess] = []

    def __enter__(self) -> WorkerProcesses:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(
        self, *args: str, env: dict[str, str] | None = None, separate_stderr: bool = False
    ) -> WorkerProcess:
        log = self.tmp_path / f"worker-{len(self.started)}.log"
        worker = WorkerProcess(
            self.app,
            *self.args,
            *args,
            db_url=self.db_url,
            log=log,
            env=env,
            separate_stderr=separate_stderr,
        )
        self.started.append(worker)
        return worker

    def stop_all(self, workers: list[WorkerProcess] | None = None) -> None:
        """SIGTERM the workers (default: all started) at once; each must exit with 0."""
        chosen = self.started if workers is None else workers
        for worker in chosen:
            worker.sigterm()
        for worker in chosen:
            code = worker.stop()
            assert code == 0, f"worker {worker.pid} exited {code}:\n{worker.output()[-3000:]}"

    def close(self) -> None:
        for worker in self.started:
            worker.kill()

    def logs(self) -> str:
        return "\n".join(w.output() for w in self.started)
