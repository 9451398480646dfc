"""What the README and docs/migrating.md say about FastAPI and the request's session, checked
on the FastAPI version our extras install (versions from FastAPI's release notes: 0.106.0 ran
a ``yield`` dependency's exit code before the response and its background tasks; 0.118.0
moved it back after the response; 0.121.0 added ``Depends(scope="function")``)."""

# ruff: noqa: I002 (no `from __future__ import annotations`: FastAPI reads the annotations
# of endpoints defined inside the tests)

import threading
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import fastapi
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import DetachedInstanceError

from tests.conftest import Record

pytestmark = pytest.mark.dialects("sqlite", reason="FastAPI's behaviour, not the database's")

VERSION = tuple(int(part) for part in fastapi.__version__.split(".")[:2])


class SessionProbe:
    """A ``yield`` session dependency that records when FastAPI closes it."""

    def __init__(self, engine: Engine) -> None:
        self.factory = sessionmaker(engine)
        self.closed = threading.Event()
        self.seen: list[Any] = []

    def get_db(self) -> Iterator[Session]:
        db = self.factory()
        try:
            yield db
        finally:
            db.close()
            self.closed.set()


@pytest.fixture
def probe(engine: Engine) -> SessionProbe:
    with sessionmaker(engine)() as db:
        db.add(Record(id=1, status="new"))
        db.commit()
    return SessionProbe(engine)


def background_sees(probe: SessionProbe, scope: Literal["function"] | None = None) -> Any:
    app = FastAPI()
    dependency = Depends(probe.get_db, scope=scope) if scope else Depends(probe.get_db)

    def in_background(db: Session) -> None:
        probe.seen.append("closed before the task" if probe.closed.is_set() else "open")
        try:
            probe.seen.append(db.get(Record, 1).status)  # type: ignore[union-attr]
        except Exception as exc:
            probe.seen.append(type(exc).__name__)

    @app.post("/refresh")
    def refresh(background: BackgroundTasks, db: Annotated[Session, dependency]) -> dict[str, str]:
        background.add_task(in_background, db)
        return {"status": "queued"}

    with TestClient(app) as client:
        assert client.post("/refresh").status_code == 200
    return probe.seen


@pytest.mark.skipif(VERSION < (0, 118), reason="0.106-0.117 closed it before, see the docs")
def test_since_fastapi_0_118_a_yield_dependencys_session_is_still_open_in_background_tasks(
    probe: SessionProbe,
) -> None:
    assert background_sees(probe) == ["open", "new"]


@pytest.mark.skipif(VERSION < (0, 121), reason="Depends(scope=...) is new in FastAPI 0.121")
def test_a_function_scoped_session_is_closed_before_background_tasks_run(
    probe: SessionProbe,
) -> None:
    seen = background_sees(probe, scope="function")
    assert seen[0] == "closed before the task"


def test_a_request_session_shared_with_a_thread_fails_once_the_request_has_ended(
    probe: SessionProbe,
) -> None:
    """Still true on every version: a thread outlives the request, whose dependency closes
    the session; the ORM object the thread was handed is detached."""
    app = FastAPI()
    failures: list[str] = []
    done = threading.Event()

    def update_later(record: Record) -> None:
        probe.closed.wait(30)  # the request is over and its session closed
        try:
            record.status = record.status + "!"
        except DetachedInstanceError as exc:
            failures.append(type(exc).__name__)
        finally:
            done.set()

    @app.post("/refresh")
    def refresh(db: Annotated[Session, Depends(probe.get_db)]) -> dict[str, str]:
        record = db.get(Record, 1)
        db.commit()  # expires the instance: the thread must load it again, in a closed session
        threading.Thread(target=update_later, args=(record,)).start()
        return {"status": "queued"}

    with TestClient(app) as client:
        assert client.post("/refresh").status_code == 200
    assert done.wait(30)
    assert failures == ["DetachedInstanceError"]
