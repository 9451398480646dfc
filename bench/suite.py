"""Runs every selected workload for every selected contender; failures become rows."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable

from bench import workloads as w
from bench.contenders import registry
from bench.contenders.base import Contender
from bench.results import Result
from bench.settings import Settings

log = logging.getLogger("bench")
MAIN = ("w1", "w2", "w1b", "w2b", "w2h", "w3", "w4")


def _failed(workload: str, name: str, exc: BaseException, processes: int = 1) -> Result:
    log.error("%s / %s failed:\n%s", name, workload, traceback.format_exc())
    return Result(
        workload=workload,
        contender=name,
        processes=processes,
        failure=" ".join(f"{type(exc).__name__}: {exc}".split())[:400],
    )


def _measure(
    contender: Contender,
    settings: Settings,
    workload: str,
    processes: int = 1,
    producers: int = 1,
    count_server: bool = False,
) -> Result:
    if workload in ("w1", "w2", "w1b", "w2b"):
        bulk = workload.endswith("b")
        return w.throughput(
            contender,
            settings,
            workload,
            mode="noop" if workload.startswith("w1") else "update",
            n=settings.n,
            processes=processes,
            bulk=bulk,
            producers=1 if bulk else producers,
            count_server=count_server,
        )
    if workload == "w2h":
        n = min(settings.n_hold, contender.max_hold_jobs or settings.n_hold)
        return w.throughput(contender, settings, "w2h", mode="hold", n=n)
    if workload == "w3":
        return w.latency(contender, settings)
    if workload == "w4":
        return w.throughput(
            contender, settings, "w4", mode="request", n=settings.n, processes=processes
        )
    raise ValueError(workload)


def _session(
    contender: Contender,
    settings: Settings,
    processes: int,
    body: Callable[[], list[Result]],
    label: str,
) -> list[Result]:
    """setup -> start workers -> warm up -> body -> stop; a crash fails the session's rows."""
    try:
        contender.setup()
        contender.start(processes)
        try:
            w.warm_up(contender, settings, processes)
            return body()
        finally:
            contender.stop()
    except Exception as exc:
        return [_failed(label, contender.name, exc, processes)]


def run_contender(contender: Contender, settings: Settings) -> list[Result]:
    results: list[Result] = []
    chosen = [
        x
        for x in MAIN
        if x in settings.workloads
        and contender.supports(x)
        and (x not in ("w1b", "w2b") or contender.has_bulk())  # else the same as W1 / W2
    ]

    def main_body() -> list[Result]:
        rows = []
        for workload in chosen:
            log.info("%s: %s", contender.name, workload)
            try:
                row = _measure(contender, settings, workload)
            except Exception as exc:
                row = _failed(workload, contender.name, exc)
            log.info("  -> %s", row)
            rows.append(row)
            contender.reset()
            time.sleep(0.5)
        return rows

    if chosen:
        results += _session(contender, settings, 1, main_body, "+".join(chosen))
    if "scale" in settings.workloads and contender.supports("scale"):
        for processes in settings.scale_processes:

            def scale_body(p: int = processes) -> list[Result]:
                rows = []
                for workload in ("w1", "w2", "w1b", "w2b"):
                    log.info("%s x%d: %s", contender.name, p, workload)
                    row = _measure(contender, settings, workload, p, settings.scale_producers, True)
                    row.workload = f"scale-{workload}"
                    rows.append(row)
                    contender.reset()
                return rows

            results += _session(contender, settings, processes, scale_body, "scale")
    if "finished" in settings.workloads and contender.supports("finished"):
        results += finished_rows(contender, settings)
    if "bulk" in settings.workloads and contender.supports("bulk") and contender.has_bulk():
        try:
            contender.setup()
            log.info("%s: bulk enqueue of %d", contender.name, settings.bulk_n)
            results.append(w.bulk_enqueue(contender, settings))
            contender.setup()
        except Exception as exc:
            results.append(_failed("bulk", contender.name, exc))
    return results


def finished_rows(contender: Contender, settings: Settings) -> list[Result]:
    """W1 on an empty job table, then W1 with ``finished_rows`` completed jobs in it."""

    def measure(suffix: str) -> list[Result]:
        rows = []
        for workload in ("w1", "w1b"):
            row = _measure(contender, settings, workload)
            row.workload = f"finished-{suffix}-{workload}"
            rows.append(row)  # no reset(): it would prune the seeded rows too
        return rows

    def empty() -> list[Result]:
        return measure("empty")

    rows = _session(contender, settings, 1, empty, "finished-empty-w1")
    try:
        contender.setup()
        log.info("%s: seeding %d finished jobs", contender.name, settings.finished_rows)
        seconds = w.seed_finished(contender.db_url, settings.finished_rows)
        contender.start(1)
        try:
            # No reset after the warm-up: it would prune the seeded rows (an earlier version
            # of this harness did, and measured the aftermath of a million-row DELETE).
            w.warm_up(contender, settings, 1, reset=False)
            for row in measure("full"):
                row.note = f"{settings.finished_rows:,} completed rows seeded in {seconds:.0f}s"
                rows.append(row)
        finally:
            contender.stop()
        contender.setup()
    except Exception as exc:
        rows.append(_failed("finished-full-w1", contender.name, exc))
    return rows


def run_all(settings: Settings) -> tuple[list[Result], dict[str, str], dict[str, str]]:
    """Returns results, contender -> versions, contender -> settings note."""
    results: list[Result] = []
    versions: dict[str, str] = {}
    notes: dict[str, str] = {}
    if "ceiling" in settings.workloads:
        log.info("pgbench ceiling")
        results.append(w.pgbench_ceiling(settings))
    factories = registry()
    for name in settings.contenders:
        log.info("== %s", name)
        try:
            contender = factories[name](settings)
        except Exception as exc:
            results.append(_failed("setup", name, exc))
            continue
        versions[name] = contender.versions()
        notes[name] = contender.settings_note()
        results += run_contender(contender, settings)
    return results, versions, notes
