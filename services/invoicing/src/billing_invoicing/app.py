"""Composition root of the invoicing service: ``python -m billing_invoicing`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from billing_invoicing.adapters.pdf import PdfRenderer
from billing_invoicing.bootstrap import build_ports
from billing_invoicing.entrypoints.consumers import register
from billing_invoicing.settings import InvoicingSettings
from billing_runtime.service import asgi_app, create_runtime

SERVICE = "invoicing"


def create_app(settings: InvoicingSettings | None = None) -> AsgiFastStream:
    """Wire the invoicing service: consumers, PDF pool, health and metrics."""
    settings = settings or InvoicingSettings()
    runtime = create_runtime(SERVICE, settings)
    renderer = PdfRenderer(max_workers=settings.pdf_workers)
    ports = build_ports(runtime.db, runtime.broker, renderer, settings)
    register(runtime, settings, ports)

    async def prepare() -> None:
        await ports.invoices.ensure_indexes()

    async def close_pool() -> None:
        await renderer.aclose()

    return asgi_app(runtime, on_startup=[prepare], on_shutdown=[close_pool])
