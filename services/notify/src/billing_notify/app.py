"""Composition root of the notify service: ``python -m billing_notify`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from billing_notify.adapters.catalog import MongoCustomerDirectory
from billing_notify.adapters.delivery_log import MongoDeliveryLog
from billing_notify.adapters.documents import GridFsInvoicePdfs
from billing_notify.adapters.mailer import SmtpMailer
from billing_notify.entrypoints.consumers import register
from billing_notify.service.notify_invoice import MailPolicy, NotifyPorts
from billing_notify.settings import NotifySettings
from billing_runtime.service import Runtime, asgi_app, create_runtime

SERVICE = "notify"


def build(settings: NotifySettings) -> Runtime:
    """Wire the notify service: catalog, PDFs, delivery log, SMTP, consumer."""
    runtime = create_runtime(SERVICE, settings)
    password = settings.smtp_password
    ports = NotifyPorts(
        customers=MongoCustomerDirectory(runtime.db),
        pdfs=GridFsInvoicePdfs(runtime.db),
        deliveries=MongoDeliveryLog(runtime.db),
        mailer=SmtpMailer(
            settings.smtp_host,
            settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=None if password is None else password.get_secret_value(),
            timeout_seconds=settings.smtp_timeout_seconds,
        ),
    )
    policy = MailPolicy(
        sender=settings.sender_mailbox,
        send_zero_amount_invoices=settings.send_zero_amount_invoices,
    )
    register(runtime, settings, ports, policy)
    return runtime


def create_app(settings: NotifySettings | None = None) -> AsgiFastStream:
    """The notify service as an ASGI app (consumers, /health, /live, /metrics)."""
    return asgi_app(build(settings or NotifySettings()))
