from __future__ import annotations

import datetime
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    make_transient_to_detached,
    mapped_column,
)

from sqljobs import InvalidArguments, SerializationError
from sqljobs._arguments import ArgumentSpec, to_json_value
from tests.conftest import Record


def task(session: Session, record_id: int, note: str = "", tags: list[str] | None = None) -> None:
    pass


spec = ArgumentSpec(task, frozenset({"session"}))


class _Models(DeclarativeBase):
    pass


class UserAccount(_Models):
    __tablename__ = "user_accounts"
    pk: Mapped[int] = mapped_column(primary_key=True)


def test_valid_arguments_round_trip_as_json() -> None:
    assert spec.validate({"record_id": 3, "tags": ("a", "b")}) == {
        "record_id": 3,
        "tags": ["a", "b"],
    }


def test_missing_and_unknown_arguments_are_named() -> None:
    with pytest.raises(InvalidArguments, match=r"missing required argument.*'record_id'"):
        spec.validate({})
    with pytest.raises(InvalidArguments, match=r"unexpected argument.*'recordid'.*accepts"):
        spec.validate({"record_id": 1, "recordid": 2})


def test_type_hints_are_checked() -> None:
    with pytest.raises(InvalidArguments, match="'record_id' should be int, got str"):
        spec.validate({"record_id": "7"})
    with pytest.raises(InvalidArguments, match="'record_id' should be int, got bool"):
        spec.validate({"record_id": True})


def test_the_injected_session_cannot_be_passed() -> None:
    with pytest.raises(InvalidArguments, match="do not pass 'session'"):
        spec.validate({"record_id": 1, "session": None})


def test_a_session_argument_is_refused_with_advice() -> None:
    engine = create_engine("sqlite://")
    with Session(engine) as session, pytest.raises(SerializationError) as info:
        spec.validate({"record_id": 1, "note": session})
    assert "never shares the caller's Session" in str(info.value)
    assert "primary key" in str(info.value)
    with engine.connect() as conn, pytest.raises(SerializationError, match="Connection"):
        spec.validate({"record_id": 1, "note": conn})
    with pytest.raises(SerializationError, match="Engine"):
        spec.validate({"record_id": 1, "note": engine})


def test_an_orm_instance_is_refused_and_the_key_suggested() -> None:
    with pytest.raises(SerializationError) as info:
        spec.validate({"record_id": 1, "tags": [Record(id=5)]})
    assert str(info.value) == (
        "args['tags'][0] is an ORM instance of Record: ORM objects are bound to the caller's "
        "session and would be detached in the job. Pass its primary key (record.id) and load "
        "it in the task with session.get(Record, ...)."
    )


def test_the_orm_instance_message_shows_the_enqueue_the_readme_promises() -> None:
    record = Record(id=42)
    make_transient_to_detached(record)  # as loaded by a session: its identity is known
    with pytest.raises(SerializationError) as info:
        spec.validate({"record_id": record})
    assert str(info.value) == (
        "args['record_id'] is an ORM instance of Record (Record with key 42): ORM objects are "
        "bound to the caller's session and would be detached in the job. Pass its primary key "
        "(record_id=record.id) and load it in the task with session.get(Record, record_id)."
    )
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    documented = readme.split("# SerializationError: ", 1)[1].split("\n```", 1)[0]
    assert " ".join(documented.replace("# ", "").split()) == str(info.value)


def test_an_orm_instance_passed_for_a_parameter_not_named_id_says_to_rename_it() -> None:
    def send(user: Any) -> None: ...

    with pytest.raises(SerializationError) as info:
        ArgumentSpec(send, frozenset()).validate({"user": UserAccount(pk=3)})
    assert "(user_id=user_account.pk, with the task's parameter renamed to user_id)" in str(
        info.value
    )
    assert "session.get(UserAccount, user_id)" in str(info.value)


@pytest.mark.parametrize(
    "value, kind",
    [
        (datetime.datetime(2024, 1, 1), "datetime"),
        (uuid.uuid4(), "UUID"),
        ({1: "a"}, "non-string key"),
        (float("nan"), "nan"),
        (object(), "object"),
        ({"x": {1, 2}}, "set"),
    ],
)
def test_non_json_values_are_refused_with_what_to_do(value: Any, kind: str) -> None:
    with pytest.raises(SerializationError, match=kind):
        spec.validate({"record_id": 1, "note": value})


def test_positional_only_parameters_are_refused_at_definition() -> None:
    def bad(x: int, /) -> None:
        pass

    with pytest.raises(InvalidArguments, match="positional-only"):
        ArgumentSpec(bad, frozenset())


def test_var_keyword_tasks_accept_any_json_keyword() -> None:
    def loose(**anything: Any) -> None:
        pass

    assert ArgumentSpec(loose, frozenset()).validate({"a": [1, {"b": None}]}) == {
        "a": [1, {"b": None}]
    }


def test_stored_arguments_must_be_an_object() -> None:
    with pytest.raises(InvalidArguments, match="must be a JSON object, got list"):
        spec.bind_stored([1, 2])


def test_return_values_must_be_json() -> None:
    assert to_json_value((1, "a")) == [1, "a"]
    with pytest.raises(SerializationError, match=r"^value is a object, which is not JSON"):
        to_json_value(object())


def test_stored_value_rules_name_the_path_and_stop_at_the_depth_limit() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match=r"^result\[0\].*contains itself"):
        to_json_value(loop, "result")

    def loose(**anything: Any) -> None:
        pass

    with pytest.raises(SerializationError, match=r"^args has a key 'a\\x00b' that contains a NUL"):
        ArgumentSpec(loose, frozenset()).validate({"a\x00b": 1})
    with pytest.raises(SerializationError, match=r"^args\['note'\]\['k'\] contains a lone"):
        spec.validate({"record_id": 1, "note": {"k": "\udc80"}})
