"""docs/benchmarks.md (markdown tables, targets, machine) and the PNG chart."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cpu import CpuRow
from bench.cpu import table as cpu_table
from bench.ratios import ratios
from bench.ratios import table as ratio_table
from bench.results import Result
from bench.settings import Settings
from bench.targets import Target, evaluate

#: Hand-written analysis (profiles, what remains and why), appended to the report.
NOTES = Path(__file__).resolve().parent / "NOTES.md"


@dataclass
class Context:
    settings: Settings
    versions: dict[str, str]
    notes: dict[str, str]
    load_before: str
    load_after: str
    elapsed: float
    finished: str
    #: The ``cpu`` workload's rows (bench/cpu.py), as dicts.
    cpu: list[dict[str, Any]] = field(default_factory=list)


def machine_load() -> str:
    return Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").exists() else "?"


def _server_versions() -> str:
    found = []
    for argv in (["psql", "--version"], ["mariadb", "--version"], ["redis-server", "--version"]):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            found.append(out.stdout.strip().split("\n")[0])
        except OSError:
            found.append(f"{argv[0]}: not found")
    return "; ".join(found)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def fmt(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _sum(result: Result) -> str:
    if result.expected_sum is None:
        return "-"
    mark = "ok" if result.correct or result.counter_sum == result.expected_sum else "**WRONG**"
    if result.request_rows is not None:
        mark = "ok" if result.correct else "**WRONG**"
        return f"{result.counter_sum}/{result.expected_sum}, requests {result.request_rows} {mark}"
    return f"{result.counter_sum}/{result.expected_sum} {mark}"


def _problems(result: Result) -> str:
    parts = []
    if result.failure:
        parts.append(f"**FAILED**: {result.failure}")
    if result.error_kinds:
        parts.append(", ".join(f"{k} x{n}" for k, n in result.error_kinds.items()))
    if result.leftover:
        parts.append(f"left: {result.leftover}")
    if result.note:
        parts.append(result.note)
    return "; ".join(parts) or ""


def _table(rows: list[Result], columns: list[tuple[str, str]]) -> list[str]:
    lines = ["| " + " | ".join(h for h, _ in columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        cells = []
        for _, key in columns:
            cells.append(_cell(row, key))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cell(row: Result, key: str) -> str:
    if key == "label":
        return row.label
    if key == "workload":
        return row.workload
    if key == "sum":
        return _sum(row)
    if key == "problems":
        return _problems(row)
    if key == "server_per_job":
        return fmt(row.server_per_job, 1)
    if key in ("errors", "lost", "n", "producers"):
        return "-" if row.failure else str(getattr(row, key))
    if key == "seconds":
        return fmt(row.seconds, 1)
    if key.endswith("_ms"):
        return fmt(getattr(row, key), 1)
    return fmt(getattr(row, key))


THROUGHPUT = [
    ("contender", "label"),
    ("N", "n"),
    ("enqueue/s", "enqueue_per_s"),
    ("jobs/s (end to end)", "jobs_per_s"),
    ("seconds", "seconds"),
    ("sum", "sum"),
    ("errors", "errors"),
    ("lost", "lost"),
    ("failures, errors, notes", "problems"),
]
BY_WORKLOAD = [("workload", "workload"), *THROUGHPUT]
SCALE = [
    ("workload", "workload"),
    ("contender", "label"),
    ("producers", "producers"),
    ("N", "n"),
    ("enqueue/s", "enqueue_per_s"),
    ("jobs/s (end to end)", "jobs_per_s"),
    ("server xacts (PG) / statements (MariaDB) per job", "server_per_job"),
    ("sum", "sum"),
    ("errors", "errors"),
    ("lost", "lost"),
    ("failures, errors, notes", "problems"),
]
LATENCY = [
    ("contender", "label"),
    ("N", "n"),
    ("p50 ms", "p50_ms"),
    ("p99 ms", "p99_ms"),
    ("max ms", "max_ms"),
    ("errors", "errors"),
    ("lost", "lost"),
    ("failures, errors, notes", "problems"),
]
SECTIONS = [
    ("w1", "W1 no-op: enqueue N jobs one by one, run at concurrency 4", THROUGHPUT),
    ("w2", "W2 database work: `UPDATE counters SET n = n + 1 WHERE id = :k`, 10 rows", THROUGHPUT),
    (
        "w1b",
        "W1b: W1 with the N jobs enqueued in one call (systems with a bulk enqueue)",
        THROUGHPUT,
    ),
    (
        "w2b",
        "W2b: W2 with the N jobs enqueued in one call (systems with a bulk enqueue)",
        THROUGHPUT,
    ),
    ("w2h", "W2h: W2, each job holding its connection {hold} ms before the UPDATE", THROUGHPUT),
    ("w3", "W3 pickup latency: {rate:g} jobs/s for {secs:g} s", LATENCY),
    (
        "w4",
        "W4 the request's shape: each request inserts its own row and hands an UPDATE job over"
        " (sqljobs: in the request's transaction; the others: commit, then enqueue / start)",
        THROUGHPUT,
    ),
    (
        "scale-*",
        "Scale: 1, 2, 4 worker processes; W1/W2 enqueued by {producers} threads at once, W1b/W2b"
        " in one call",
        SCALE,
    ),
    (
        "finished-*",
        "W1 / W1b on an empty job table, then with {finished:,} finished jobs in it",
        BY_WORKLOAD,
    ),
    ("bulk", "Bulk enqueue in one call (no workers running)", THROUGHPUT),
]


def render(results: list[Result], ctx: Context, *, chart_name: str) -> str:
    s = ctx.settings
    out = [
        "# Benchmarks",
        "",
        "Generated by the benchmark suite in `bench/` (see `bench/README.md`). Reproduce with:",
        "",
        "```bash",
        "bash bench/run            # full run (~17 min on 2 busy cores), writes this file",
        "bash bench/run --quick    # smoke run with small sizes",
        "bash bench/run --contenders sqljobs-pg,procrastinate --workloads ceiling,w2 --n 5000",
        "```",
        "",
        "It needs PostgreSQL (127.0.0.1:5432), MariaDB (127.0.0.1:3306) and Redis",
        "(127.0.0.1:6379) on loopback, and `pgbench`; it creates the `sqljobs_bench` databases.",
        "Ratios measured within one run are what matter; absolute numbers depend on the",
        "machine and on what else it was doing.",
        "",
        f"![benchmarks]({chart_name})",
        "",
        "## Machine and settings",
        "",
        f"- Run: finished {ctx.finished} UTC, {ctx.elapsed / 60:.1f} min",
        f"- CPU: {_cpu()}, {os.cpu_count()} cores; {platform.platform()}",
        f"- Python {platform.python_version()}; servers: {_server_versions()}",
        f"- Load average (1/5/15 min) before: `{ctx.load_before}`, after: `{ctx.load_after}`",
        f"- N = {s.n} (W1, W2, scale), {s.n_hold} (W2h, hold {s.hold_ms} ms), concurrency "
        f"{s.concurrency}, W3 {s.latency_rate:g} jobs/s for {s.latency_seconds:g} s, bulk "
        f"{s.bulk_n:,}, finished rows {s.finished_rows:,}",
        "- Each enqueue is its own transaction (or HTTP request); workers run while jobs are",
        "  enqueued; end-to-end jobs/s = N / (first enqueue -> last job finished). Pickup",
        "  latency = job start - start of the enqueue call. Every job reports through a marker",
        "  file (done / error); *lost* = jobs that never reported done; *sum* = `SUM(n)` of",
        "  `counters` after the run, which must equal N.",
        "",
        "| contender | versions | settings |",
        "|---|---|---|",
    ]
    for name in s.contenders:
        out.append(f"| {name} | {ctx.versions.get(name, '?')} | {ctx.notes.get(name, '')} |")
    out += ["", "## Targets (ratios within this run)", ""]
    out += _targets(evaluate(results, s))
    out += [
        "",
        "## sqljobs beside the floor, naive threads and the best durable peer",
        "",
        f"The floor is the same job body on {s.concurrency} plain threads in one process, no",
        "queue; naive threads start one thread per job; both are in memory only. The peer is",
        "the fastest of procrastinate and PgQueuer in this run (PostgreSQL).",
        "",
        *ratio_table(ratios(results)),
    ]
    if ctx.cpu:
        out += [
            "",
            "## Client CPU per job, by phase (`python -m bench.cpu`)",
            "",
            "First `drain()` in one thread: each phase's statements, recorded from sqljobs,",
            "replayed on a raw DBAPI connection give the driver's own cost for the same round",
            "trips; bookkeeping is what sqljobs adds around the task's own work (enqueue +",
            "worker side - the job body). Then the `worker:` rows: a threaded worker",
            "(concurrency 4, batched claims, prefetch) over N pre-enqueued W2 jobs, each phase",
            "on its thread's CPU clock; the job body is in its run + complete.",
            "",
            *cpu_table([CpuRow(**row) for row in ctx.cpu]),
        ]
    ceiling = [r for r in results if r.workload == "ceiling"]
    if ceiling:
        c = ceiling[0]
        out += [
            "",
            "## Ceiling: pgbench, same UPDATE, same server",
            "",
            f"{fmt(c.jobs_per_s)} commits/s ({c.note}) {c.failure}".rstrip(),
        ]
    for key, title, columns in SECTIONS:
        rows = [
            r
            for r in results
            if r.workload == key or (key.endswith("*") and r.workload.startswith(key[:-1]))
        ]
        if not rows:
            continue
        if key.endswith("*"):
            rows.sort(key=lambda r: (r.workload, r.contender, r.processes))
        heading = title.format(
            hold=s.hold_ms,
            rate=s.latency_rate,
            secs=s.latency_seconds,
            finished=s.finished_rows,
            producers=s.scale_producers,
        )
        out += ["", f"## {heading}", "", *_table(rows, columns)]
    other = [r for r in results if (r.failure and "+" in r.workload) or r.workload == "setup"]
    if other:
        out += ["", "## Contenders that failed as a whole", ""]
        out += [f"- {r.contender} ({r.workload}): {r.failure}" for r in other]
    if NOTES.exists():
        out += ["", NOTES.read_text().strip()]
    return "\n".join(out) + "\n"


def _targets(targets: list[Target]) -> list[str]:
    lines = ["| target | measured | result |", "|---|---|---|"]
    for t in targets:
        verdict = {True: "met", False: "**missed**", None: "not measured"}[t.met]
        lines.append(f"| {t.name} | {t.measured} | {verdict} |")
    return lines


def chart(results: list[Result], path: Path, settings: Settings) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 2, figsize=(13, 16))
    panels = [
        ("w1", "W1 no-op, enqueued one by one, jobs/s", "jobs_per_s"),
        ("w1b", "W1b no-op, enqueued in one call, jobs/s", "jobs_per_s"),
        ("w2", "W2 database work, jobs/s", "jobs_per_s"),
        ("w2b", "W2b database work, enqueued in one call, jobs/s", "jobs_per_s"),
        ("w2h", "W2h held connection, jobs/s", "jobs_per_s"),
        ("w3", "W3 pickup latency p50 / p99, ms (log)", "p50_ms"),
        ("w4", "W4 request write + job handed over, jobs/s", "jobs_per_s"),
        ("w2-floor", "W2 on each database: sqljobs / floor / naive threads, jobs/s", "jobs_per_s"),
    ]
    ceiling = next((r.jobs_per_s for r in results if r.workload == "ceiling"), None)
    for ax, (key, title, attr) in zip(axes.flat, panels, strict=True):
        if key == "w2-floor":
            rows = [r for r in results if r.workload == "w2" and not r.failure and _per_db(r)]
        else:
            rows = [r for r in results if r.workload == key and not r.failure]
        labels = [r.label for r in rows]
        values = [getattr(r, attr) or 0 for r in rows]
        colors = [_color(r.contender) for r in rows]
        colors = [c if r.correct else "tab:red" for c, r in zip(colors, rows, strict=True)]
        ax.barh(labels, values, color=colors)
        if key == "w3":
            ax.barh(labels, [r.p99_ms or 0 for r in rows], color="none", edgecolor="black")
            ax.set_xscale("log")
        if key == "w2h":
            floor = 0.9 * settings.concurrency / (settings.hold_ms / 1000)
            ax.axvline(floor, color="tab:green", linestyle=":", label="target")
            ax.legend(loc="lower right")
        if key in ("w2", "w2b") and ceiling:
            ax.axvline(ceiling, color="tab:green", linestyle="--", label="pgbench ceiling")
            ax.axvline(ceiling / 2, color="tab:green", linestyle=":", label="0.5x ceiling")
            ax.legend(loc="lower right")
        ax.set_title(title)
        ax.invert_yaxis()
    fig.suptitle(
        "sqljobs benchmarks (blue: sqljobs, green: the floor, orange: naive threads, gray: others,"
        " red: lost/wrong/errors)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _color(contender: str) -> str:
    if contender.startswith("sqljobs"):
        return "tab:blue"
    if contender.startswith("floor"):
        return "tab:green"
    if contender.startswith("naive"):
        return "tab:orange"
    return "tab:gray"


def _per_db(result: Result) -> bool:
    return result.contender.startswith(("sqljobs-pg", "sqljobs-m", "sqljobs-s", "floor", "naive"))
