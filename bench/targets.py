"""The issue's targets, each computed as a ratio from rows of the same run."""

from __future__ import annotations

from dataclasses import dataclass

from bench.results import Result
from bench.settings import Settings

SQLJOBS = "sqljobs-pg"
OTHERS = ("background-tasks", "procrastinate", "pgqueuer", "celery-redis")


@dataclass
class Target:
    name: str
    measured: str
    met: bool | None


def _find(
    results: list[Result], workload: str, contender: str, processes: int = 1
) -> Result | None:
    for r in results:
        if (
            r.workload == workload
            and r.contender == contender
            and r.processes == processes
            and not r.failure
        ):
            return r
    return None


def _clean(r: Result) -> bool:
    return r.correct


def evaluate(results: list[Result], settings: Settings) -> list[Target]:
    out: list[Target] = []
    ceiling = _find(results, "ceiling", "pgbench", settings.concurrency)
    for workloads, how in (
        (("w2", "scale-w2"), "enqueued one by one"),
        (("w2b",), "enqueued in one call"),
    ):
        candidates = [
            r
            for r in results
            if r.contender == SQLJOBS
            and r.workload in workloads
            and r.processes <= 2
            and not r.failure
        ]
        best = max(candidates, key=lambda r: r.jobs_per_s or 0, default=None)
        name = f"W2 sqljobs >= 0.5x pgbench ceiling (<= 2 worker processes, {how})"
        if ceiling and ceiling.jobs_per_s and best and best.jobs_per_s:
            ratio = best.jobs_per_s / ceiling.jobs_per_s
            measured = (
                f"{best.jobs_per_s:,.0f} ({best.label} {best.workload}) / "
                f"{ceiling.jobs_per_s:,.0f} = {ratio:.2f}x"
            )
            out.append(Target(name, measured, ratio >= 0.5))
        else:
            out.append(Target(name, "missing rows", None))
    w2_candidates = [
        r
        for r in results
        if r.contender == SQLJOBS and r.workload in ("w2", "w2b", "scale-w2") and not r.failure
    ]
    w2 = _find(results, "w2", SQLJOBS)
    bad_w2 = [r.label for r in w2_candidates if not _clean(r)]
    if w2:
        out.append(
            Target(
                "W2 sqljobs: sum == N, 0 errors, 0 lost (all sqljobs-pg W2 runs)",
                "all clean" if not bad_w2 else f"not clean: {', '.join(bad_w2)}",
                not bad_w2,
            )
        )
    naive = _find(results, "w2", "naive-threads")
    if w2 and naive and w2.jobs_per_s and naive.jobs_per_s:
        ratio = w2.jobs_per_s / naive.jobs_per_s
        out.append(
            Target(
                "W2 sqljobs >= 3x naive threads",
                f"{w2.jobs_per_s:,.0f} / {naive.jobs_per_s:,.0f} = {ratio:.2f}x",
                ratio >= 3,
            )
        )
    w2h = _find(results, "w2h", SQLJOBS)
    if w2h and w2h.jobs_per_s:
        floor = 0.9 * settings.concurrency / (settings.hold_ms / 1000)
        out.append(
            Target(
                f"W2h sqljobs: sum == N, 0 errors, >= 0.9 x concurrency/hold = {floor:.0f} jobs/s",
                f"{w2h.jobs_per_s:,.0f} jobs/s, sum {w2h.counter_sum}/{w2h.expected_sum}, "
                f"{w2h.errors} errors, {w2h.lost} lost",
                _clean(w2h) and w2h.jobs_per_s >= floor,
            )
        )
    for key in ("w1", "w1b"):
        w1 = _find(results, key, SQLJOBS)
        # A system without a bulk enqueue has no W1b row: its W1 is the same workload.
        found = [_find(results, key, name) or _find(results, "w1", name) for name in OTHERS]
        others = [r for r in found if r and r.jobs_per_s]
        if w1 and w1.jobs_per_s and others:
            best = max(others, key=lambda r: r.jobs_per_s or 0)
            ratio = w1.jobs_per_s / (best.jobs_per_s or 1)
            out.append(
                Target(
                    f"{key.upper()} sqljobs >= 3x best contender other than naive threads",
                    f"{w1.jobs_per_s:,.0f} / {best.jobs_per_s:,.0f} ({best.contender}) = "
                    f"{ratio:.2f}x",
                    ratio >= 3,
                )
            )
    for name in (SQLJOBS, "sqljobs-pg-inproc"):
        w3 = _find(results, "w3", name)
        if w3 and w3.p50_ms is not None and w3.p99_ms is not None:
            out.append(
                Target(
                    f"W3 {name}: p50 <= 5 ms and p99 <= 20 ms",
                    f"p50 {w3.p50_ms:.1f} ms, p99 {w3.p99_ms:.1f} ms",
                    w3.p50_ms <= 5 and w3.p99_ms <= 20 and w3.lost == 0,
                )
            )
    bulk = _find(results, "bulk", SQLJOBS)
    if bulk and bulk.enqueue_per_s:
        out.append(
            Target(
                f"bulk enqueue of {bulk.n:,} >= 20,000 jobs/s",
                f"{bulk.enqueue_per_s:,.0f} jobs/s",
                bulk.enqueue_per_s >= 20_000,
            )
        )
    for key in ("w1", "w1b"):
        empty = _find(results, f"finished-empty-{key}", SQLJOBS)
        full = _find(results, f"finished-full-{key}", SQLJOBS)
        if empty and full and empty.jobs_per_s and full.jobs_per_s:
            ratio = full.jobs_per_s / empty.jobs_per_s
            out.append(
                Target(
                    f"{key.upper()} with {settings.finished_rows:,} finished rows within 10% of "
                    "the empty-table run",
                    f"{full.jobs_per_s:,.0f} / {empty.jobs_per_s:,.0f} = {ratio:.2f}x",
                    ratio >= 0.9,
                )
            )
    failures = [r for r in results if r.failure or not r.correct]
    listed = ", ".join(sorted({f"{r.label} {r.workload}" for r in failures})) or "none"
    out.append(
        Target("no contender's failure hidden: rows with errors/lost/failures", listed, True)
    )
    return out
