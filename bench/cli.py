"""``python -m bench [--quick] [--n N] [--contenders a,b] [--workloads w1,w2]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import cpu, report
from bench.contenders import registry
from bench.db import ensure_databases
from bench.markers import clear_markers
from bench.results import Result
from bench.settings import ALL_WORKLOADS, OUT, ROOT, Settings
from bench.suite import run_all

DEFAULT_CONTENDERS = (
    "sqljobs-pg",
    "sqljobs-pg-inproc",
    "sqljobs-mariadb",
    "sqljobs-sqlite",
    "naive-threads",
    "naive-threads-mariadb",
    "naive-threads-sqlite",
    "floor-pg",
    "floor-mariadb",
    "floor-sqlite",
    "background-tasks",
    "procrastinate",
    "pgqueuer",
    "celery-redis",
)


def parse(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="bash bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--n", type=int, help="jobs per W1/W2 run (default 2000)")
    parser.add_argument("--n-hold", type=int, help="jobs per W2h run (default 1000)")
    parser.add_argument("--concurrency", type=int, help="worker concurrency (default 4)")
    parser.add_argument("--poll-interval", type=float, help="sqljobs poll_interval (0.05)")
    parser.add_argument("--latency-seconds", type=float, help="W3 duration (default 10)")
    parser.add_argument("--bulk-n", type=int, help="bulk enqueue size (default 100000)")
    parser.add_argument("--finished-rows", type=int, help="finished rows seeded (1000000)")
    parser.add_argument(
        "--contenders", help=f"comma-separated, from {','.join(DEFAULT_CONTENDERS)}"
    )
    parser.add_argument("--workloads", help=f"comma-separated, from {','.join(ALL_WORKLOADS)}")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--chart", default=str(ROOT / "docs" / "benchmarks.png"))
    parser.add_argument(
        "--render", metavar="JSON", help="only render the report from a saved results file"
    )
    parser.add_argument(
        "--profile", action="store_true", help="run sqljobs worker processes under py-spy"
    )
    args = parser.parse_args(argv)
    settings = Settings.quick() if args.quick else Settings()
    for name in ("n", "n_hold", "concurrency", "poll_interval", "latency_seconds", "bulk_n"):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    if args.finished_rows is not None:
        settings.finished_rows = args.finished_rows
    settings.contenders = (
        args.contenders.split(",") if args.contenders else list(DEFAULT_CONTENDERS)
    )
    unknown = set(settings.contenders) - set(registry())
    if unknown:
        parser.error(f"unknown contenders: {sorted(unknown)}")
    if args.workloads:
        settings.workloads = args.workloads.split(",")
        bad = set(settings.workloads) - set(ALL_WORKLOADS)
        if bad:
            parser.error(f"unknown workloads: {sorted(bad)}")
    return settings, args


def cpu_databases(contenders: list[str]) -> list[str]:
    """The databases of the chosen sqljobs contenders, for the ``cpu`` workload."""
    chosen = {"sqljobs-pg": "postgresql", "sqljobs-mariadb": "mariadb", "sqljobs-sqlite": "sqlite"}
    return [database for name, database in chosen.items() if name in contenders]


def run(settings: Settings) -> tuple[list[Result], report.Context]:
    """Run the suite; save results and context to ``bench/.out/results-<time>.json``."""
    machine_before = report.machine_load()
    started = time.time()
    results, versions, notes = run_all(settings)
    cpu_rows = []
    if "cpu" in settings.workloads:
        for database in cpu_databases(settings.contenders):
            cpu_rows += [dataclasses.asdict(row) for row in cpu.measure(database, settings.n)]
            cpu_rows += [
                dataclasses.asdict(row) for row in cpu.measure_worker(database, settings.n)
            ]
    context = report.Context(
        settings=settings,
        versions=versions,
        notes=notes,
        load_before=machine_before,
        load_after=report.machine_load(),
        elapsed=time.time() - started,
        finished=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        cpu=cpu_rows,
    )
    OUT.mkdir(parents=True, exist_ok=True)
    data = {
        "results": [dataclasses.asdict(r) for r in results],
        "context": dataclasses.asdict(context),
    }
    for path in (OUT / f"results-{int(started)}.json", OUT / "results.json"):
        path.write_text(json.dumps(data, indent=1))
    return results, context


def load(path: Path) -> tuple[list[Result], report.Context]:
    """Results and context saved by :func:`run`, to render the report again."""
    data = json.loads(path.read_text())
    raw = data["context"]
    settings = raw.pop("settings")
    settings["scale_processes"] = tuple(settings["scale_processes"])
    context = report.Context(settings=Settings(**settings), **raw)
    return [Result(**r) for r in data["results"]], context


def main(argv: list[str] | None = None) -> int:
    settings, args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("httpx", "sqljobs"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not args.render:
        ensure_databases()
        clear_markers()
    if args.profile:
        import bench.contenders.sqljobs_ as sj

        sj.PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        sj.PROFILE = True
    if args.render:
        results, context = load(Path(args.render))
    else:
        results, context = run(settings)
    text = report.render(results, context, chart_name=Path(args.chart).name)
    report.chart(results, Path(args.chart), context.settings)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    print(text)
    return 0
