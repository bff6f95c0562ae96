"""Composition root of the invoicing service: ``python -m billing_invoicing`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from billing_invoicing.adapters.pdf import PdfRenderer
from billing_invoicing.bootstrap import build_ports
from billing_invoicing.entrypoints.consumers import register
from billing_invoicing.settings import InvoicingSettings
from billing_runtime.service import Runtime, asgi_app, create_runtime

SERVICE = "invoicing"


def build(settings: InvoicingSettings) -> Runtime:
    """Wire the invoicing service: consumers, repositories, PDF pool."""
    runtime = create_runtime(SERVICE, settings)
    renderer = PdfRenderer(max_workers=settings.pdf_workers)
    ports = build_ports(runtime.db, runtime.publisher, renderer, settings)
    register(runtime, settings, ports)

    async def prepare() -> None:
        await ports.invoices.ensure_indexes()

    async def close_pool() -> None:
        await renderer.aclose()

    runtime.on_startup.append(prepare)
    runtime.on_shutdown.append(close_pool)
    return runtime


def create_app(settings: InvoicingSettings | None = None) -> AsgiFastStream:
    """The invoicing service as an ASGI app (consumers, /health, /live, /metrics)."""
    return asgi_app(build(settings or InvoicingSettings()))
