"""Composition root of the invoicing service: ``python -m billing_invoicing`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream
from faststream.asgi.types import ASGIApp

from billing_invoicing.adapters.contacts_repo import MongoContactBook
from billing_invoicing.adapters.pdf import PdfRenderer
from billing_invoicing.bootstrap import build_ports, einvoice_ports, query_ports
from billing_invoicing.entrypoints.consumers import register
from billing_invoicing.entrypoints.http import invoicing_api
from billing_invoicing.settings import InvoicingSettings
from billing_runtime.service import Runtime, asgi_app, create_runtime

SERVICE = "invoicing"
API_PREFIX = "/v1"


def build(settings: InvoicingSettings) -> Runtime:
    """Wire the invoicing service: consumers, repositories, PDF pool."""
    runtime, _ = _build(settings)
    return runtime


def _build(settings: InvoicingSettings) -> tuple[Runtime, ASGIApp]:
    runtime = create_runtime(SERVICE, settings)
    renderer = PdfRenderer(max_workers=settings.pdf_workers)
    ports = build_ports(runtime.db, runtime.publisher, renderer, settings)
    register(runtime, settings, ports)
    queries = query_ports(runtime.db, ports, settings, runtime.publisher, renderer)

    async def prepare() -> None:
        await ports.invoices.ensure_indexes()
        await queries.settlement.settlements.ensure_indexes()

    async def close_pool() -> None:
        await renderer.aclose()

    runtime.on_startup.append(prepare)
    runtime.on_shutdown.append(close_pool)
    api = invoicing_api(
        tokens=settings.api_scopes(),
        queries=queries,
        invoicing=ports,
        contacts=MongoContactBook(runtime.db),
        einvoices=einvoice_ports(runtime.db, ports, renderer),
    )
    return runtime, api


def create_app(settings: InvoicingSettings | None = None) -> AsgiFastStream:
    """The invoicing service as an ASGI app (consumers, the /v1 API, /health, /live,
    /metrics)."""
    runtime, api = _build(settings or InvoicingSettings())
    return asgi_app(runtime, prefixed=[(API_PREFIX, api)])
