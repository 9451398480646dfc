"""The targets, each computed as a ratio from rows of the same run (see bench/ratios.py)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.ratios import Ratio, ratios
from bench.results import Result
from bench.settings import Settings

SQLJOBS = "sqljobs-pg"


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


def _ratio_target(name: str, ratio: Ratio | None, attr: str, goal: float) -> Target:
    value = getattr(ratio, attr) if ratio else None
    if ratio is None or value is None:
        return Target(name, "missing rows", None)
    other = {
        "to_floor": (ratio.floor, "floor"),
        "to_naive": (ratio.naive, "naive threads"),
        "to_peer": (ratio.peer.jobs_per_s if ratio.peer else None, _peer_name(ratio)),
    }[attr]
    measured = f"{ratio.sqljobs:,.0f} / {other[0]:,.0f} ({other[1]}) = {value:.2f}x"
    return Target(name, measured, value >= goal)


def _peer_name(ratio: Ratio) -> str:
    return ratio.peer.contender if ratio.peer else "?"


def evaluate(results: list[Result], settings: Settings) -> list[Target]:
    out: list[Target] = []
    table = {(r.workload, r.database): r for r in ratios(results)}
    for database, goal in (("postgresql", 1.0), ("mariadb", 1.0), ("sqlite", 0.9)):
        out.append(
            _ratio_target(
                f"W4 sqljobs >= {goal:.1f}x naive threads ({database})",
                table.get(("w4", database)),
                "to_naive",
                goal,
            )
        )
    w2_pg = table.get(("w2", "postgresql"))
    out.append(_ratio_target("W2 sqljobs >= 0.6x the floor (PostgreSQL)", w2_pg, "to_floor", 0.6))
    out.append(_ratio_target("W2 sqljobs >= 2x the best durable peer", w2_pg, "to_peer", 2.0))
    for key in ("w1", "w1b"):
        out.append(
            _ratio_target(
                f"{key.upper()} sqljobs >= 2x the best durable peer",
                table.get((key, "postgresql")),
                "to_peer",
                2.0,
            )
        )
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
