"""``task.enqueue`` is checked against the task's signature by mypy (ParamSpec): every call
of tests/typing/enqueue_calls.py marked ``# refused: <code>`` gets exactly that error, and
every other call none."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api as mypy_api

CALLS = Path(__file__).resolve().parents[1] / "typing" / "enqueue_calls.py"


def refusals_marked() -> set[tuple[int, str]]:
    marked = set()
    for number, line in enumerate(CALLS.read_text().splitlines(), start=1):
        if (found := re.search(r"# refused: ([\w, -]+)$", line)) is not None:
            marked |= {(number, code.strip()) for code in found.group(1).split(",")}
    return marked


@pytest.mark.slow
def test_mypy_refuses_exactly_the_calls_marked_refused() -> None:
    out, err, _status = mypy_api.run(
        ["--strict", "--no-incremental", "--show-error-codes", str(CALLS)]
    )
    errors = {
        (int(m.group(1)), m.group(2))
        for m in re.finditer(r"enqueue_calls\.py:(\d+): error: .*\[([\w-]+)\]$", out, re.M)
    }
    assert err == ""
    assert len(refusals_marked()) >= 15  # the file still says what it must
    assert errors == refusals_marked(), out
