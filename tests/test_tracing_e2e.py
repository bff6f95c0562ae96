"""Trace context travels in Kafka headers: from ingest through rating and invoicing to notify.

The services run in this process (one tracer provider collects every span), but each consumer
runs in its own task started before the trace began, so a span can only join the trace through
the ``traceparent`` header of the message it handles.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from einvoice_check import validate_issued
from faststream.asgi import AsgiFastStream
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pymongo.asynchronous.database import AsyncDatabase

from billing_devtools.testing import eventually
from billing_ingest.adapters.memory import InMemoryBillRegistry
from billing_ingest.adapters.publisher import KafkaUsagePublisher, ingest_topics
from billing_ingest.service.load_bill import load_bill
from billing_invoicing.adapters.pdf import PdfRenderer
from billing_invoicing.app import create_app as invoicing_app
from billing_invoicing.bootstrap import build_ports
from billing_invoicing.entrypoints.cli import load_catalog_file
from billing_invoicing.service.generate_invoices import request_close
from billing_invoicing.settings import InvoicingSettings
from billing_notify.adapters.documents import HttpInvoicePdfs
from billing_notify.app import create_app as notify_app
from billing_notify.settings import NotifySettings
from billing_rating.app import create_app as rating_app
from billing_rating.settings import RatingSettings
from billing_runtime.kafka import EventPublisher, ensure_topics
from billing_runtime.lag import wait_for_no_lag
from billing_schemas.topics import Topic, topic_name

if TYPE_CHECKING:
    from conftest import Infra, SmtpSink

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
READER = "tracing-document-reader-token-0123"


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


@pytest.fixture
async def apps(infra: Infra, namespace: str, smtp_sink: SmtpSink) -> AsyncIterator[dict[str, Any]]:
    common: dict[str, Any] = {
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "mongodb_url": infra.mongodb_url,
        "mongodb_database": namespace,
        "topic_namespace": f"{namespace}.",
    }
    settings: dict[str, Any] = {
        "rating": RatingSettings(**common),
        "invoicing": InvoicingSettings(**common, document_reader_tokens=[READER]),
        "notify": NotifySettings(**common, smtp_host=smtp_sink.host, smtp_port=smtp_sink.port),
    }
    async with AsyncExitStack() as stack:
        invoicing = invoicing_app(settings["invoicing"])
        # notify reads the PDFs from invoicing's API: here its app, served in this process
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=invoicing))
        stack.push_async_callback(client.aclose)
        pdfs = HttpInvoicePdfs("http://invoicing", READER, client=client)
        factories: dict[str, Callable[[], AsgiFastStream]] = {
            "rating": lambda: rating_app(settings["rating"]),
            "invoicing": lambda: invoicing,
            "notify": lambda: notify_app(settings["notify"], pdfs),
        }
        for factory in factories.values():
            app = factory()
            await app.start()
            stack.push_async_callback(app.stop)
        yield settings


async def test_one_trace_from_the_bill_to_the_email(
    apps: dict[str, Any],
    spans: InMemorySpanExporter,
    infra: Infra,
    namespace: str,
    mongo_db: AsyncDatabase[dict[str, Any]],
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    ns = f"{namespace}."
    bill = tmp_path / "bill.csv"
    lines = (ROOT / "demo" / "focus_sample.csv").read_text().splitlines(keepends=True)
    bill.write_text("".join(lines[:61]))  # the header and 60 rows of September 2024
    settings: InvoicingSettings = apps["invoicing"]
    publisher = EventPublisher(infra.kafka_bootstrap_servers, "trace-test")
    await publisher.start()
    ports = build_ports(mongo_db, publisher, PdfRenderer(), settings)
    await ports.catalog.apply(load_catalog_file(ROOT / "demo" / "catalog.yaml"))
    await ensure_topics(infra.kafka_bootstrap_servers, ingest_topics(ns))

    tracer = trace.get_tracer("test")
    try:
        with tracer.start_as_current_span("month end") as root:
            await load_bill(
                bill, publisher=KafkaUsagePublisher(publisher, ns), registry=InMemoryBillRegistry()
            )
            await wait_for_no_lag(
                infra.kafka_bootstrap_servers,
                [
                    (f"{ns}billing-rating", [topic_name(Topic.USAGE_RECORDED, ns)]),
                    (f"{ns}billing-invoicing", [topic_name(Topic.CHARGE_RATED, ns)]),
                ],
                within_seconds=60,
            )
            closing = await request_close(
                ports,
                period="2024-09",
                customer_id=None,
                issue_date=date(2024, 10, 1),
                correlation_id="trace-test",
            )
        assert closing

        async def emails_sent() -> bool:
            return len(smtp_sink.messages()) == len(closing)

        await eventually(emails_sent, "an email per closed invoice", within=90)
        await asyncio.sleep(0.5)  # the notify span ends just after the SMTP reply
    finally:
        await publisher.stop()

    trace_id = root.get_span_context().trace_id
    in_trace = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}
    assert f"rating consume {topic_name(Topic.USAGE_RECORDED, ns)}" in names
    assert f"invoicing consume {topic_name(Topic.CHARGE_RATED, ns)}" in names
    assert "invoicing close" in names
    # notify's span is named after its subscriber (the bill's report has its own, under the root)
    assert "notify email-finalized-invoices" in names
    # each joined through a message: its parent is a span of another service, not the root
    by_id = {s.context.span_id: s for s in in_trace}
    notify = next(s for s in in_trace if s.name == "notify email-finalized-invoices")
    assert notify.parent is not None
    assert by_id[notify.parent.span_id].name == "invoicing close"

    # the invoices the trace closed, in the three e-invoice formats, validated (issue 17)
    await validate_issued(mongo_db, tmp_path, "tracing_e2e", expect=len(closing))
