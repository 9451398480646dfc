"""Property tests (hypothesis) of argument validation and serialization: any JSON value
round-trips through a real job row unchanged; anything else is refused with a clear error
at enqueue time and leaves no row behind. Never a corrupt row."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqljobs import JobQueue, SqljobsError
from sqljobs._arguments import to_json_value

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
not_json = (
    st.sampled_from([math.nan, math.inf, -math.inf])
    | st.binary(min_size=0, max_size=8)
    | st.sets(st.integers(), max_size=3)
    | st.datetimes()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.uuids()
    | st.builds(object)
    | st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=3)
)
with_a_bad_leaf = st.recursive(
    not_json,
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3).map(lambda items: [*items, 1])
        | st.dictionaries(st.text(max_size=5), inner, min_size=1, max_size=3)
    ),
    max_leaves=6,
)
BAD_TYPES = (float, bytes, set, datetime.datetime, decimal.Decimal, uuid.UUID, object, dict, list)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_json_values_round_trip_through_validation(value: Any) -> None:
    assert to_json_value(value) == json.loads(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(value=with_a_bad_leaf)
def test_anything_else_is_refused_with_a_clear_error(value: Any) -> None:
    with pytest.raises(SqljobsError) as refused:
        to_json_value(value)
    message = str(refused.value)
    assert "argument value" in message and ("JSON" in message or "json" in message), message


def test_stored_arguments_round_trip_or_are_refused_never_corrupt(
    dialect: str, jobs: JobQueue
) -> None:
    @jobs.task(name="keep")
    def keep(payload: Any = None) -> None:
        return None

    examples = {"stored": 0, "refused": 0}

    @settings(
        max_examples=120 if dialect == "sqlite" else 60,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(payload=json_values | with_a_bad_leaf)
    def round_trip(payload: Any) -> None:
        before = sum(jobs.counts().values())
        try:
            job_id = keep.enqueue(payload=payload)
        except SqljobsError as exc:
            assert str(exc)
            assert sum(jobs.counts().values()) == before, "a refused job left a row"
            examples["refused"] += 1
            return
        stored = jobs.get(job_id).args
        assert stored == {"payload": json.loads(json.dumps(payload))}, (payload, stored)
        # ...and the row binds back to the task's arguments unchanged.
        assert keep.arguments.bind_stored(stored) == stored
        examples["stored"] += 1

    round_trip()
    assert examples["stored"] > 10 and examples["refused"] > 10, examples
