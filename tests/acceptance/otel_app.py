"""The app of the tracing tests: a FastAPI endpoint that enqueues a job in the request's
transaction, a task with two durable steps and one that fails, traced by
``sqljobs.otel.instrument``.

Spans go to an in-memory exporter (``memory``) or, when ``SQLJOBS_TEST_SPANS`` names a file
(a ``sqljobs worker`` process), to that file as JSON lines, each span written as it ends.
``SQLJOBS_TEST_OTEL_LINKS=1`` instruments in link mode.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

from fastapi import Depends, FastAPI, Request, Response
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobContext, JobQueue, otel

engine = create_engine(os.environ["SQLJOBS_TEST_DATABASE_URL"], pool_size=8)
SessionLocal = sessionmaker(engine)
jobs = JobQueue(SessionLocal)


class JsonLinesExporter(SpanExporter):
    """Appends each finished span to ``path`` as one JSON line (``ReadableSpan.to_json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock, self.path.open("a") as out:
            for span in spans:
                out.write(span.to_json(indent=None) + "\n")
        return SpanExportResult.SUCCESS


memory = InMemorySpanExporter()
provider = TracerProvider()
spans_file = os.environ.get("SQLJOBS_TEST_SPANS")
provider.add_span_processor(
    SimpleSpanProcessor(JsonLinesExporter(Path(spans_file)) if spans_file else memory)
)
tracer = provider.get_tracer("tests.otel_app")
tracing = otel.instrument(
    jobs, tracer_provider=provider, links=os.environ.get("SQLJOBS_TEST_OTEL_LINKS") == "1"
)


def render(name: str) -> str:
    return f"Welcome, {name}!"


def send(text: str) -> int:
    return len(text)


@jobs.task(name="welcome")
def welcome(ctx: JobContext, name: str) -> int:
    text = ctx.step("render", render, name=name)
    ctx.logger.info("rendered the welcome for %s", name)
    return ctx.step("send", send, text=text)


@jobs.task(name="doomed", max_attempts=1)
def doomed(ctx: JobContext) -> None:
    raise ValueError("the mail server said no")


web = FastAPI()


@web.middleware("http")
async def server_span(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """The request's SERVER span, continuing a caller's ``traceparent`` if it sent one."""
    parent = propagate.extract(dict(request.headers))
    with tracer.start_as_current_span(
        f"{request.method} {request.url.path}", context=parent, kind=trace.SpanKind.SERVER
    ):
        return await call_next(request)


def get_db() -> Iterator[Session]:
    with SessionLocal() as session:
        yield session


@web.post("/signup")
def signup(name: str, db: Session = Depends(get_db)) -> dict[str, int]:  # noqa: B008
    job_id = welcome.enqueue(db, name=name)
    db.commit()
    return {"job_id": job_id}


def read_spans(path: Path) -> list[dict[str, object]]:
    """The spans a worker process wrote to ``path`` so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
