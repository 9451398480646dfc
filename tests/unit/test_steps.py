"""Step names and step results without a database: the rules ``ctx.step`` checks first."""

from __future__ import annotations

import datetime as dt
import enum
import math
from decimal import Decimal

import pytest

from sqljobs import JobContext, SerializationError
from sqljobs.exceptions import StepMisused
from sqljobs.jobs import Job, JobState
from sqljobs.steps import MAX_STEP_NAME, StepCodec, check_step_name


class Size(enum.Enum):
    SMALL = "s"


def test_step_names_are_non_empty_storable_strings_of_at_most_200_characters() -> None:
    assert check_step_name("charge-1") == "charge-1"
    with pytest.raises(StepMisused, match="a step's name is a non-empty str, got ''"):
        check_step_name("")
    with pytest.raises(StepMisused, match="a step's name is a non-empty str, got 3"):
        check_step_name(3)
    with pytest.raises(StepMisused, match=f"at most {MAX_STEP_NAME} characters, got 201"):
        check_step_name("x" * 201)
    with pytest.raises(StepMisused, match="NUL"):
        check_step_name("a\x00b")


def test_results_convert_by_the_return_annotation_and_come_back_equal() -> None:
    def when() -> dt.date:
        return dt.date(2026, 12, 3)

    def amount() -> Decimal:
        return Decimal("1.10")

    def size() -> Size:
        return Size.SMALL

    for func in (when, amount, size):
        codec = StepCodec.of(func)
        stored = codec.encode(func())
        assert isinstance(stored, str)
        assert codec.decode(stored) == func()


def test_an_unstorable_result_raises_serialization_error_naming_the_value() -> None:
    plain = StepCodec.of(lambda: None)
    with pytest.raises(SerializationError, match="result"):
        plain.encode(math.inf)
    with pytest.raises(SerializationError, match="result"):
        plain.encode({1: "int key"})

    def amount() -> Decimal:
        return Decimal("NaN")

    with pytest.raises(SerializationError, match="is not a finite number"):
        StepCodec.of(amount).encode(amount())


def test_a_context_outside_a_running_attempt_refuses_steps() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    job = Job(
        id=1, task="t", queue="q", args={}, state=JobState.RUNNING, priority=0, attempt=1,
        max_attempts=1, run_at=now, created_at=now,
    )  # fmt: skip
    with pytest.raises(StepMisused, match="belongs to no running attempt"):
        JobContext(job).step("a", lambda: None)
