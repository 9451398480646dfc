"""Parsing and formatting shared by the CLI, the API and the dashboard (no database)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from sqljobs._overview import format_age, parse_age
from sqljobs.cli import EXIT_USAGE, _build_app
from sqljobs.cli._output import Rate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800), ("1w", 604800),
     ("1h30m", 5400), (" 1.5h ", 5400), ("0s", 0), ("2H", 7200)],
)  # fmt: skip
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "1y", "-5m", "5m x", "m5", "1.2.3h"])
def test_parse_age_refuses_what_is_not_an_age(text: str) -> None:
    with pytest.raises(ValueError, match="age"):
        parse_age(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0042, "4ms"), (3.21, "3.2s"), (42, "42s"), (60, "1m"), (125, "2m 5s"), (3600, "1h"),
     (4000, "1h 6m"), (3 * 86400, "3d"), (90000 * 3, "3d 3h"), (-5, "0ms")],
)  # fmt: skip
def test_format_age(seconds: float, text: str) -> None:
    assert format_age(timedelta(seconds=seconds)) == text
    assert format_age(seconds) == text


def test_rate_is_completions_per_second_over_a_sliding_window() -> None:
    rate = Rate(window=10)
    assert rate.add(0, now=100.0) == 0.0
    assert rate.add(10, now=101.0) == pytest.approx(10.0)
    assert rate.add(30, now=105.0) == pytest.approx(6.0)
    assert rate.add(30, now=120.0) == pytest.approx(0.0)  # old samples age out


def test_commands_and_options_are_documented_in_help() -> None:
    result = CliRunner().invoke(_build_app(), ["--help"])
    assert result.exit_code == 0
    for command in ("worker", "create-schema", "status", "jobs", "retry", "cancel", "prune",
                    "enqueue"):  # fmt: skip
        assert command in result.stdout
    assert "Exit codes" in result.stdout
    listing = CliRunner().invoke(_build_app(), ["jobs", "list", "--help"])
    assert "--older-than" in listing.stdout and "--state" in listing.stdout


def test_bad_worker_options_are_usage_errors() -> None:
    runner = CliRunner()
    bad_format = runner.invoke(_build_app(), ["worker", "x:y", "--log-format", "xml"])
    assert bad_format.exit_code == EXIT_USAGE and "--log-format" in bad_format.stderr
    bad_level = runner.invoke(_build_app(), ["worker", "x:y", "--log-level", "LOUD"])
    assert bad_level.exit_code == EXIT_USAGE
    bad_prefetch = runner.invoke(_build_app(), ["worker", "x:y", "--prefetch", "-1"])
    assert bad_prefetch.exit_code == EXIT_USAGE and "--prefetch" in bad_prefetch.stderr
