"""FastAPI ``BackgroundTasks`` served by uvicorn (one process), driven over HTTP: each
enqueue is a ``POST /jobs`` on a keep-alive connection. Not durable."""

from __future__ import annotations

import socket
import time

import httpx

from bench.contenders.base import Contender
from bench.db import reset_counters
from bench.jobbody import job_args
from bench.procs import Process, python_module
from bench.settings import PG_URL, Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BackgroundTasksContender(Contender):
    name = "background-tasks"
    durable = False
    packages = ("fastapi", "starlette", "uvicorn", "httpx")

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._server: Process | None = None
        self._client: httpx.Client | None = None

    def supports(self, workload: str) -> bool:
        return workload in ("w1", "w2", "w1b", "w2b", "w2h", "w3", "w4")

    def setup(self) -> None:
        reset_counters(self.db_url)

    def start(self, processes: int = 1) -> None:
        port = free_port()
        argv = python_module(
            "uvicorn",
            "bench.apps.fastapi_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        )
        self._server = Process("background-tasks", argv, env={"BENCH_PG_URL": PG_URL})
        self._client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                self._client.get("/health").raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or not self._server.alive():
                    raise RuntimeError(f"uvicorn did not start:\n{self._server.tail()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._server is not None:
            self._server.stop()

    def enqueue(self, run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
        assert self._client is not None
        response = self._client.post("/jobs", json=job_args(run, i, mode, hold_ms, t0))
        response.raise_for_status()

    def request(self, run: str, i: int, t0: float) -> None:
        assert self._client is not None
        response = self._client.post("/requests", json=job_args(run, i, "update", 0, t0))
        response.raise_for_status()

    def settings_note(self) -> str:
        return "uvicorn, 1 process, sync task on Starlette's 40-thread pool, default QueuePool"
