"""Benchmark settings: sizes, loopback URLs, where scratch files go."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / ".out"
MARKERS = OUT / "markers"
DB_NAME = "sqljobs_bench"

PG_URL = os.environ.get("BENCH_PG_URL", f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}")
MARIADB_URL = os.environ.get("BENCH_MARIADB_URL", f"mysql+pymysql://root@127.0.0.1:3306/{DB_NAME}")
SQLITE_URL = os.environ.get("BENCH_SQLITE_URL", f"sqlite:///{OUT / 'sqljobs_bench.db'}")
#: The database each per-database contender (sqljobs, floor, naive threads) runs on.
DB_URLS = {"postgresql": PG_URL, "mariadb": MARIADB_URL, "sqlite": SQLITE_URL}
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
#: Plain libpq DSN of the PostgreSQL database (pgbench, psycopg, asyncpg).
PG_DSN = PG_URL.replace("postgresql+psycopg://", "postgresql://")

COUNTER_ROWS = 10
ALL_WORKLOADS = (
    "ceiling",
    "w1",
    "w2",
    "w1b",
    "w2b",
    "w2h",
    "w3",
    "w4",
    "cpu",
    "scale",
    "finished",
    "bulk",
)


@dataclass
class Settings:
    """What to run and how big. Defaults finish in a few minutes on 2 cores."""

    n: int = 2000
    n_hold: int = 1000
    hold_ms: int = 50
    concurrency: int = 4
    latency_rate: float = 50.0
    latency_seconds: float = 10.0
    bulk_n: int = 100_000
    finished_rows: int = 1_000_000
    scale_processes: tuple[int, ...] = (1, 2, 4)
    #: Threads enqueueing at once in the scale runs (each enqueue its own transaction).
    scale_producers: int = 8
    poll_interval: float = 0.05
    pgbench_seconds: int = 10
    job_timeout: float = 120.0
    contenders: list[str] = field(default_factory=list)
    workloads: list[str] = field(default_factory=lambda: list(ALL_WORKLOADS))

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            n=200,
            n_hold=100,
            latency_seconds=3.0,
            bulk_n=10_000,
            finished_rows=100_000,
            scale_processes=(1, 2),
            pgbench_seconds=3,
            job_timeout=60.0,
        )
