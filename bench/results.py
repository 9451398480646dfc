"""One measured row: a workload run by a contender, with its correctness columns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Result:
    workload: str
    contender: str
    n: int = 0
    processes: int = 1
    enqueue_per_s: float | None = None
    jobs_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    counter_sum: int | None = None
    expected_sum: int | None = None
    #: Scale runs: threads enqueueing at once.
    producers: int = 1
    #: Scale runs: the server's transactions (PostgreSQL) or statements (MariaDB) per job,
    #: everything included (enqueue, claims, starts, completions, heartbeats).
    server_per_job: float | None = None
    #: W4: the request rows that committed (must equal ``expected_sum`` too).
    request_rows: int | None = None
    errors: int = 0
    lost: int = 0
    seconds: float = 0.0
    #: What the system's own bookkeeping says is unfinished (e.g. "3 retryable").
    leftover: str = ""
    #: Error types seen, e.g. {"TimeoutError": 487}.
    error_kinds: dict[str, int] = field(default_factory=dict)
    #: Set when the contender crashed or did not finish: the row is a failure, shown as such.
    failure: str = ""
    note: str = ""

    @property
    def label(self) -> str:
        return self.contender if self.processes == 1 else f"{self.contender} x{self.processes}"

    @property
    def correct(self) -> bool:
        sum_ok = self.expected_sum is None or self.counter_sum == self.expected_sum
        if self.request_rows is not None:
            sum_ok = sum_ok and self.request_rows == self.expected_sum
        return not self.failure and sum_ok and self.errors == 0 and self.lost == 0
