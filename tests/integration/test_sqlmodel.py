"""SQLModel apps (docs/sqlmodel.md): a JobQueue on ``sessionmaker(engine, class_=Session)``
type-checks under mypy --strict, and tasks get the app's SQLModel ``Session``, whose
``session.exec`` works and commits with the job."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api as mypy_api
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, select

from sqljobs import JobState
from tests.typing.sqlmodel_app import Hero, make_queue

HERO_TABLE = SQLModel.metadata.tables["hero"]
APP = Path(__file__).resolve().parents[1] / "typing" / "sqlmodel_app.py"


@pytest.mark.slow
def test_a_sqlmodel_app_type_checks_under_mypy_strict() -> None:
    out, err, status = mypy_api.run(["--strict", "--no-incremental", str(APP)])
    assert status == 0, out + err


def test_a_task_gets_a_sqlmodel_session_and_its_writes_commit_with_the_job(
    engine: Engine,
) -> None:
    SQLModel.metadata.create_all(engine, tables=[HERO_TABLE])
    jobs, train = make_queue(engine)
    jobs.create_schema()
    with Session(engine) as db:
        db.add(Hero(name="Deadpond"))
        db.commit()
        job_id = train.enqueue(db, name="Deadpond")
        db.commit()
    try:
        jobs.drain()
        job = jobs.get(job_id)
        assert (job.state, job.result) == (JobState.COMPLETED, 1)
        with Session(engine) as db:
            assert db.exec(select(Hero.powers)).one() == 1
    finally:
        jobs.close()
        SQLModel.metadata.drop_all(engine, tables=[HERO_TABLE])
