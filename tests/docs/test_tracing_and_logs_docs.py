"""docs/tracing.md and docs/logs.md as written: each ```python block is a whole file beside
the README's myapp/jobs.py, running it prints the output the doc shows, and the trace picture
(docs/tracing.svg) is what scripts/trace_picture.py draws from real spans."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs import snippets
from tests.docs.snippets import ROOT

DOCS = {"tracing": ROOT / "docs" / "tracing.md", "logs": ROOT / "docs" / "logs.md"}
PICTURE = ROOT / "docs" / "tracing.svg"


def run(tmp_path: Path, doc: str, module: str) -> str:
    return snippets.run_module(tmp_path, [DOCS[doc]], module)


def shown_output(doc: str) -> str:
    """The doc's first plain ``` block: the output its example prints."""
    return str(re.findall(r"(?<=\n\n)```\n(.*?)```", DOCS[doc].read_text(), re.S)[0])


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_every_snippet_is_a_whole_file(doc: str) -> None:
    text = DOCS[doc].read_text()
    assert snippets.unmarked(text) == []
    assert set(snippets.files(text)) == (
        {"myapp/tracing.py"} if doc == "tracing" else {"myapp/report.py", "myapp/quiet.py"}
    )


def test_the_tracing_example_prints_the_trace_the_doc_shows(tmp_path: Path) -> None:
    assert run(tmp_path, "tracing", "myapp.tracing") == shown_output("tracing")


def test_the_logs_example_prints_the_lines_the_doc_shows(tmp_path: Path) -> None:
    assert run(tmp_path, "logs", "myapp.report") == shown_output("logs")
    assert run(tmp_path, "logs", "myapp.quiet") == ""


def test_the_trace_picture_is_drawn_from_the_spans_the_script_makes(tmp_path: Path) -> None:
    out = tmp_path / "trace.svg"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "trace_picture.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    labels = done.stdout.splitlines()
    assert labels == [
        "POST /orders/1042/ship",
        "publish ship_order",
        "process ship_order (attempt 1)",
        "step render-label",
        "step charge",
        "process ship_order (attempt 2)",
        "step charge",
    ]

    def drawn(svg: str) -> list[str]:
        return re.findall(r'<text x="[\d.]+" y="[\d.]+">([^<]+)</text>', svg)[: len(labels)]

    assert drawn(out.read_text()) == labels
    assert drawn(PICTURE.read_text()) == labels  # the committed picture is up to date
