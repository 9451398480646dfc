"""Property tests (hypothesis) of the rules for stored values (``check_json``): every value
is either refused with a SerializationError that names its path before anything is written,
or round-trips through a real job row unchanged, on every database. Never a corrupt row, never
a database error, never a RecursionError."""

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

from sqljobs import JobQueue, SerializationError
from sqljobs._arguments import MAX_JSON_DEPTH, check_json, to_json_value

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

#: Text every database stores: anything but NUL and lone surrogates (hypothesis leaves
#: surrogates out unless asked).
clean_text = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=40
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.integers(min_value=10**30, max_value=10**600)
    | st.floats(allow_nan=False, allow_infinity=False)
    | clean_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(clean_text, inner, max_size=5),
    max_leaves=25,
)


def nested(depth: int, leaf: Any = 1) -> Any:
    """``depth`` lists and objects (alternating), one inside the other, around ``leaf``."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


#: Lists and objects nested around the depth limit, and far beyond it.
deep_values = st.builds(
    nested, st.integers(MAX_JSON_DEPTH - 3, MAX_JSON_DEPTH + 3) | st.sampled_from([5000, 100_000])
)
#: Strings with a NUL or a lone surrogate somewhere.
odd_text = st.builds(
    lambda before, odd, after: before + odd + after,
    clean_text,
    st.sampled_from(["\x00"]) | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    clean_text,
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
    | odd_text
    | st.dictionaries(odd_text, st.integers(), min_size=1, max_size=2)
    | st.integers(4400, 5000).map(lambda digits: 10**digits)
    | st.builds(nested, st.integers(MAX_JSON_DEPTH + 1, MAX_JSON_DEPTH + 40))
)
with_a_bad_leaf = st.recursive(
    not_json,
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3).map(lambda items: [*items, 1])
        | st.dictionaries(clean_text, inner, min_size=1, max_size=3)
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
    with pytest.raises(SerializationError) as refused:
        to_json_value(value, "result")
    message = str(refused.value)
    assert message.startswith("result"), message  # the path of the bad part
    assert any(advice in message for advice in ("JSON", "string", "base64")), message


@settings(max_examples=200, deadline=None)
@given(value=json_values | deep_values | with_a_bad_leaf)
def test_every_value_is_checked_without_recursion_errors(value: Any) -> None:
    try:
        check_json(value, "value")
    except SerializationError:
        return
    assert to_json_value(value) == json.loads(json.dumps(value))


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
    @given(payload=json_values | deep_values | with_a_bad_leaf)
    def round_trip(payload: Any) -> None:
        before = sum(jobs.counts().values())
        try:
            check_json(payload, "args['payload']")
        except SerializationError as exc:
            # Refused by the rules: enqueue refuses it the same way, before any write.
            with pytest.raises(SerializationError) as refused:
                keep.enqueue(payload=payload)
            assert str(refused.value) == str(exc)
            assert sum(jobs.counts().values()) == before, "a refused job left a row"
            examples["refused"] += 1
            return
        job_id = keep.enqueue(payload=payload)
        stored = jobs.get(job_id).args
        assert stored == {"payload": json.loads(json.dumps(payload))}, (payload, stored)
        # ...and the row binds back to the task's arguments unchanged.
        assert keep.arguments.bind_stored(stored) == stored
        examples["stored"] += 1

    round_trip()
    assert examples["stored"] > 10 and examples["refused"] > 10, examples
