"""Every sqljobs figure as a ratio to what ran beside it in the same run, per database: the
Python floor (the job body on plain threads, no queue), naive threads, and the best durable
peer. Absolute numbers move with the machine; these ratios are what the targets read."""

from __future__ import annotations

from dataclasses import dataclass

from bench.results import Result

#: database -> (sqljobs contender, floor contender, naive-threads contender)
PER_DATABASE = {
    "postgresql": ("sqljobs-pg", "floor-pg", "naive-threads"),
    "mariadb": ("sqljobs-mariadb", "floor-mariadb", "naive-threads-mariadb"),
    "sqlite": ("sqljobs-sqlite", "floor-sqlite", "naive-threads-sqlite"),
}
#: Durable peers the targets compare with (PostgreSQL only).
DURABLE_PEERS = ("procrastinate", "pgqueuer")
WORKLOADS = ("w1", "w1b", "w2", "w2b", "w2h", "w4")


@dataclass
class Ratio:
    workload: str
    database: str
    sqljobs: float | None
    floor: float | None
    naive: float | None
    peer: Result | None

    @staticmethod
    def _of(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    @property
    def to_floor(self) -> float | None:
        return self._of(self.sqljobs, self.floor)

    @property
    def to_naive(self) -> float | None:
        return self._of(self.sqljobs, self.naive)

    @property
    def to_peer(self) -> float | None:
        return self._of(self.sqljobs, self.peer.jobs_per_s if self.peer else None)


def find(results: list[Result], workload: str, contender: str) -> Result | None:
    """The clean single-process row of ``contender`` for ``workload``, if there is one."""
    for r in results:
        if r.workload == workload and r.contender == contender and r.processes == 1:
            if not r.failure:
                return r
    return None


def _rate(results: list[Result], workload: str, contender: str) -> float | None:
    row = find(results, workload, contender)
    return row.jobs_per_s if row and row.correct else None


def best_peer(results: list[Result], workload: str) -> Result | None:
    """The fastest clean durable peer for ``workload``; a peer without a bulk enqueue has no
    W1b/W2b row, and its W1/W2 is then the same workload."""
    rows = []
    for name in DURABLE_PEERS:
        row = find(results, workload, name)
        if row is None and workload in ("w1b", "w2b"):
            row = find(results, workload[:2], name)
        if row is not None and row.correct and row.jobs_per_s:
            rows.append(row)
    return max(rows, key=lambda r: r.jobs_per_s or 0, default=None)


def ratios(results: list[Result]) -> list[Ratio]:
    out = []
    for workload in WORKLOADS:
        for database, (sqljobs, floor, naive) in PER_DATABASE.items():
            row = Ratio(
                workload,
                database,
                _rate(results, workload, sqljobs),
                _rate(results, workload, floor),
                _rate(results, workload, naive),
                best_peer(results, workload) if database == "postgresql" else None,
            )
            if row.sqljobs is not None:
                out.append(row)
    return out


def table(rows: list[Ratio]) -> list[str]:
    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    def times(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    lines = [
        "| workload | database | sqljobs jobs/s | floor | naive threads | best durable peer "
        "| x floor | x naive | x peer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        peer = f"{num(r.peer.jobs_per_s)} ({r.peer.contender})" if r.peer else "-"
        lines.append(
            f"| {r.workload.upper()} | {r.database} | {num(r.sqljobs)} | {num(r.floor)} "
            f"| {num(r.naive)} | {peer} | {times(r.to_floor)} | {times(r.to_naive)} "
            f"| {times(r.to_peer)} |"
        )
    return lines
