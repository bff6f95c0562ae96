"""Composition root of the invoicing service: ``python -m billing_invoicing`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream
from faststream.asgi.types import ASGIApp

from billing_invoicing.bootstrap import (
    build_ports,
    contact_book,
    customer_accounts,
    einvoice_ports,
    ensure_indexes,
    pdf_renderer,
    query_ports,
)
from billing_invoicing.entrypoints.consumers import register
from billing_invoicing.entrypoints.http import invoicing_api
from billing_invoicing.settings import InvoicingSettings
from billing_runtime.audit import KafkaAuditTrail
from billing_runtime.kafka import Publisher
from billing_runtime.service import Runtime, asgi_app, create_runtime, declare_output
from billing_schemas.channels import AUDIT_RECORDED

SERVICE = "invoicing"
API_PREFIX = "/v1"


def build(settings: InvoicingSettings, publisher: Publisher | None = None) -> Runtime:
    """Wire the invoicing service: consumers, repositories, PDF pool (publishing to Kafka,
    unless another publisher is given: an in-memory one in tests)."""
    runtime, _ = _build(settings, publisher)
    return runtime


def _build(
    settings: InvoicingSettings, publisher: Publisher | None = None
) -> tuple[Runtime, ASGIApp]:
    runtime = create_runtime(SERVICE, settings, publisher)
    renderer = pdf_renderer(settings)
    ports = build_ports(runtime.db, runtime.publisher, renderer, settings)
    register(runtime, settings, ports)
    queries = query_ports(runtime.db, ports, settings, runtime.publisher, renderer)

    async def prepare() -> None:
        await ensure_indexes(runtime.db, ports)
        # the PDF processes start (and import WeasyPrint) now, not when a close is waiting
        await renderer.start()

    async def close_pool() -> None:
        await renderer.aclose()

    runtime.on_startup.append(prepare)
    runtime.on_shutdown.append(close_pool)
    api = invoicing_api(
        tokens=settings.api_scopes(),
        queries=queries,
        invoicing=ports,
        contacts=contact_book(runtime.db),
        einvoices=einvoice_ports(runtime.db, ports, renderer),
        audit=KafkaAuditTrail(
            runtime.publisher,
            settings.topic_namespace,
            SERVICE,
            settings.kafka_bootstrap_servers,
        ),
        signing_key=settings.portal_signing_key(),
        accounts=customer_accounts(runtime.db, queries.settlement),
        max_request_bytes=settings.max_request_bytes,
        document_readers=settings.document_readers(),
    )
    declare_output(
        runtime,
        AUDIT_RECORDED,
        description="What the API changed in money or access: payments, contacts, closes, "
        "the catalog.",
    )
    return runtime, api


def create_app(settings: InvoicingSettings | None = None) -> AsgiFastStream:
    """The invoicing service as an ASGI app (consumers, the /v1 API, /health, /live,
    /metrics)."""
    runtime, api = _build(settings or InvoicingSettings())
    return asgi_app(runtime, prefixed=[(API_PREFIX, api)])
