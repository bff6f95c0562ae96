"""Composition root of the notify service: ``python -m billing_notify`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from billing_notify.bootstrap import build_ports, ensure_indexes, invoice_pdfs, mail_policy
from billing_notify.entrypoints.consumers import register
from billing_notify.entrypoints.retry_loop import register_retry_loop
from billing_notify.ports import InvoicePdfs, Mailer
from billing_notify.settings import NotifySettings
from billing_runtime.kafka import Publisher
from billing_runtime.service import Runtime, asgi_app, create_runtime

SERVICE = "notify"


def build(
    settings: NotifySettings,
    publisher: Publisher | None = None,
    mailer: Mailer | None = None,
    pdfs: InvoicePdfs | None = None,
) -> Runtime:
    """Wire the notify service: catalog, PDFs, delivery log, SMTP, consumers, re-driver
    (publishing to Kafka, mailing over SMTP and reading PDFs from invoicing's API, unless
    another publisher, mailer or PDF source is given: in-memory ones in tests)."""
    runtime = create_runtime(SERVICE, settings, publisher)
    if pdfs is None:
        documents = invoice_pdfs(settings)
        runtime.on_shutdown.append(documents.aclose)
        pdfs = documents
    ports = build_ports(runtime.db, settings, mailer, pdfs)
    policy = mail_policy(settings)

    async def prepare() -> None:
        await ensure_indexes(runtime.db)

    runtime.on_startup.append(prepare)
    register(runtime, settings, ports, policy)
    register_retry_loop(runtime, settings, ports, policy)
    return runtime


def create_app(
    settings: NotifySettings | None = None, pdfs: InvoicePdfs | None = None
) -> AsgiFastStream:
    """The notify service as an ASGI app (consumers, re-driver, /health, /live, /metrics);
    ``pdfs`` replaces invoicing's API as the source of the PDFs (tests)."""
    return asgi_app(build(settings or NotifySettings(), pdfs=pdfs))
