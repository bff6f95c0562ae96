"""OpenTelemetry tracing across services, with the trace context carried in Kafka headers.

Publishing injects the current context (W3C ``traceparent``) into every record's headers;
consuming a batch starts a span whose parent is the context of the batch's first record, linked
to the others. So a trace follows a bill from ingest through rating and invoicing, and a period
close from the command through invoicing to the email notify sends.

Spans are exported over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the standard
OpenTelemetry variable); otherwise tracing costs next to nothing and exports nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind

TRACER_NAME = "billing"


def configure_tracing(service: str) -> None:
    """Install an OTLP exporter for this service when an endpoint is configured."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"billing-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def trace_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]


def _context_of(record: Any) -> Context:
    carrier = {k: v.decode(errors="replace") for k, v in record.headers or ()}
    return propagate.extract(carrier)


@contextmanager
def consuming(service: str, topic: str, records: Sequence[Any]) -> Iterator[None]:
    """A CONSUMER span for a batch: child of its first record's trace, linked to the rest."""
    tracer = trace.get_tracer(TRACER_NAME)
    contexts = [_context_of(r) for r in records]
    parent = contexts[0] if contexts else None
    links = []
    for ctx in contexts[1:]:
        span_context = trace.get_current_span(ctx).get_span_context()
        if span_context.is_valid:
            links.append(Link(span_context))
    with tracer.start_as_current_span(
        f"{service} consume {topic}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links[:32],
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.batch.message_count": len(records),
        },
    ):
        yield


@contextmanager
def handling(name: str, record: Any) -> Iterator[None]:
    """A span for one record's work, child of that record's own trace (not the batch's)."""
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(name, context=_context_of(record), kind=SpanKind.CONSUMER):
        yield
