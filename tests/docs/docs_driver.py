"""Run in a directory holding the README's and docs/fastapi.md's files (cwd on sys.path):
starts each complete app that no doc test covers and each file with a fragment applied (the
modules named on the command line); prints one JSON object with what it saw, for
tests/docs/test_snippets.py."""

from __future__ import annotations

import importlib
import json
import sys

from fastapi.testclient import TestClient


def main(fragment_modules: list[str]) -> None:
    from myapp.jobs import (  # type: ignore[import-not-found]  # the docs' files
        Base,
        Record,
        SessionLocal,
        engine,
        jobs,
    )

    Base.metadata.create_all(engine)
    jobs.create_schema()
    with SessionLocal() as db:
        db.add(Record(id=1))
        db.commit()
    seen: dict[str, object] = {}

    configured = importlib.import_module("myapp.configured")
    with TestClient(configured.app) as client:
        seen["configured_started"] = client.get("/docs").status_code

    async_main = importlib.import_module("myapp.async_main")
    with TestClient(async_main.app) as client:
        job_id = client.post("/records/1/check").json()["job_id"]
        seen["check_state"] = async_main.jobs.wait(job_id).state.value
        with SessionLocal() as db:
            seen["check_status"] = db.get(Record, 1).status

    for n, name in enumerate(fragment_modules):
        fragment = importlib.import_module(name)
        with TestClient(fragment.app) as client:
            answer = client.post("/records/1/refresh").json()
            assert "job_id" in answer, answer
            job_id = answer["job_id"]
            if fragment.app.router.lifespan_context.enabled is False:
                # No worker in this process: the job waits until something runs it.
                seen[f"fragment_{n}_drained"] = jobs.drain(ids=[job_id]).completed == [job_id]
            seen[f"fragment_{n}_state"] = jobs.wait(job_id).state.value
            seen[f"fragment_{n}_status"] = client.get("/records/1").json()["status"]
    seen["job_states"] = sorted({job.state.value for job in jobs.list_jobs(limit=1000)})
    jobs.close()
    async_main.jobs.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
