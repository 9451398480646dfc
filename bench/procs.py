"""Start helper processes (workers, servers) and stop them cleanly, by their own pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.settings import OUT, ROOT


class Process:
    """A subprocess in its own process group; output goes to ``bench/.out/logs/<name>.log``."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        logs = OUT / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path: Path = logs / f"{name}.log"
        self._log = self.log_path.open("w")
        full_env = {**os.environ, "PYTHONPATH": f"{ROOT}/src:{ROOT}", **(env or {})}
        self.popen = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal its group (SIGTERM), wait, then SIGKILL whatever is left."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self._log.close()
        return self.popen.returncode

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def venv_script(name: str, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / name), *args]
