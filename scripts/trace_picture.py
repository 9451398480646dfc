"""Draw one sqljobs trace as an SVG waterfall (docs/tracing.svg), from real spans.

A request span enqueues a job whose task runs two durable steps, one of which fails on the
first attempt; a worker in this process runs both attempts. The spans come from
OpenTelemetry's InMemorySpanExporter; no collector or external service is involved.

    .venv/bin/python scripts/trace_picture.py            # writes docs/tracing.svg
    .venv/bin/python scripts/trace_picture.py --out x.svg
"""

from __future__ import annotations

import argparse
import tempfile
import time
from html import escape
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from sqljobs import Backoff, JobContext, JobQueue, otel

ROOT = Path(__file__).resolve().parents[1]
ROW, LEFT, WIDTH, BAR_AREA = 26, 300, 960, 580
COLOURS = {"SERVER": "#1c7ed6", "PRODUCER": "#7048e8", "CONSUMER": "#2f9e44", "INTERNAL": "#f08c00"}
ERROR = "#e03131"


def make_trace() -> list[ReadableSpan]:
    """Run the scenario; its spans, in start order."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    folder = Path(tempfile.mkdtemp(prefix="sqljobs-trace-"))
    engine = create_engine(f"sqlite:///{folder / 'trace.db'}")
    jobs = JobQueue(sessionmaker(engine))
    jobs.create_schema()
    otel.instrument(jobs, tracer_provider=provider)

    def render(order_id: int) -> str:
        time.sleep(0.01)  # the step's work, so that the bars have a length
        return f"label-{order_id}"

    def charge(order_id: int, attempt: int) -> str:
        time.sleep(0.015)
        if attempt == 1:
            raise RuntimeError("payment gateway timed out")
        return "ch_1042"

    @jobs.task(name="ship_order", max_attempts=2, backoff=Backoff(base=0.02, jitter=0))
    def ship_order(ctx: JobContext, order_id: int) -> str:
        ctx.step("render-label", render, order_id=order_id)
        return str(ctx.step("charge", charge, order_id=order_id, attempt=ctx.attempt))

    tracer = provider.get_tracer("shop.web")
    with tracer.start_as_current_span("POST /orders/1042/ship", kind=trace.SpanKind.SERVER):
        with jobs.session_factory() as db:
            ship_order.enqueue(db, order_id=1042)
            db.commit()
        time.sleep(0.005)
    with jobs.worker(concurrency=1, poll_interval=0.01):
        deadline = time.monotonic() + 30
        while not exporter.get_finished_spans() or not any(
            (s.attributes or {}).get("sqljobs.outcome") == "completed"
            for s in exporter.get_finished_spans()
        ):
            if time.monotonic() > deadline:
                raise SystemExit("the job did not complete within 30 s")
            time.sleep(0.01)
    jobs.close()
    engine.dispose()
    return sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)


def depth(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> int:
    level, parent = 0, span.parent
    while parent is not None and parent.span_id in by_id:
        level += 1
        parent = by_id[parent.span_id].parent
    return level


def label(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    attempt = attributes.get("sqljobs.attempt")
    if span.kind.name == "CONSUMER" and attempt is not None:
        return f"{span.name} (attempt {attempt})"
    return span.name


def svg(spans: list[ReadableSpan]) -> str:
    by_id = {s.context.span_id: s for s in spans}
    start = min(s.start_time or 0 for s in spans)
    end = max(s.end_time or 0 for s in spans)
    scale = BAR_AREA / max(end - start, 1)
    trace_id = format(spans[0].context.trace_id, "032x")
    height = 70 + ROW * len(spans) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Arial, sans-serif" '
        'font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="16" y="24" font-size="15" font-weight="bold">One trace: trace_id '
        f"{trace_id[:12]}… ({len(spans)} spans, "
        f"{(end - start) / 1e6:.0f} ms)</text>",
        '<text x="16" y="44" fill="#555">request → publish (PRODUCER) → process, one per '
        "attempt (CONSUMER) → its steps; red: recorded error</text>",
    ]
    for row, span in enumerate(spans):
        y = 60 + row * ROW
        indent = 16 + 14 * depth(span, by_id)
        colour = COLOURS.get(span.kind.name, "#868e96")
        if span.status.status_code.name == "ERROR":
            colour = ERROR
        x = LEFT + ((span.start_time or start) - start) * scale
        width = max(((span.end_time or end) - (span.start_time or start)) * scale, 2)
        millis = ((span.end_time or end) - (span.start_time or start)) / 1e6
        out += [
            f'<text x="{indent}" y="{y + 15}">{escape(label(span))}</text>',
            f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="{ROW - 10}" rx="3" '
            f'fill="{colour}"/>',
            f'<text x="{x + width + 6:.1f}" y="{y + 15}" fill="#555">{millis:.1f} ms</text>',
        ]
    legend_y = 60 + ROW * len(spans) + 20
    for n, (kind, colour) in enumerate([*COLOURS.items(), ("ERROR", ERROR)]):
        x = 16 + n * 130
        out += [
            f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{colour}"/>',
            f'<text x="{x + 18}" y="{legend_y}">{kind}</text>',
        ]
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "tracing.svg")
    args = parser.parse_args()
    spans = make_trace()
    args.out.write_text(svg(spans))
    for span in spans:
        print(label(span))


if __name__ == "__main__":
    main()
