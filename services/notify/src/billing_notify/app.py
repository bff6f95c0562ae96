"""Composition root of the notify service: ``python -m billing_notify`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from billing_notify.adapters.catalog import MongoCustomerDirectory
from billing_notify.adapters.delivery_log import MongoDeliveryLog
from billing_notify.adapters.documents import MongoInvoicePdfs
from billing_notify.adapters.mailer import SmtpMailer
from billing_notify.adapters.reconciliations import MongoReconciliations
from billing_notify.entrypoints.consumers import register
from billing_notify.entrypoints.retry_loop import register_retry_loop
from billing_notify.service.deliver import MailPolicy, NotifyPorts
from billing_notify.settings import NotifySettings
from billing_runtime.service import Runtime, asgi_app, create_runtime

SERVICE = "notify"


def mail_policy(settings: NotifySettings) -> MailPolicy:
    """What the settings say about writing: sender, operators, zero invoices, reminders, retries."""
    return MailPolicy(
        sender=settings.sender_mailbox,
        entity_sender=settings.entity_sender,
        send_zero_amount_invoices=settings.send_zero_amount_invoices,
        operators=settings.operator_mailboxes,
        overdue_reminder_days=tuple(settings.overdue_reminder_days),
        rejected_rows_listed=settings.rejected_rows_listed,
        retry=settings.retry_policy,
    )


def build(settings: NotifySettings) -> Runtime:
    """Wire the notify service: catalog, PDFs, delivery log, SMTP, consumers, re-driver."""
    runtime = create_runtime(SERVICE, settings)
    password = settings.smtp_password
    deliveries = MongoDeliveryLog(runtime.db)
    ports = NotifyPorts(
        customers=MongoCustomerDirectory(runtime.db),
        pdfs=MongoInvoicePdfs(runtime.db),
        deliveries=deliveries,
        mailer=SmtpMailer(
            settings.smtp_host,
            settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=None if password is None else password.get_secret_value(),
            timeout_seconds=settings.smtp_timeout_seconds,
        ),
        reconciliations=MongoReconciliations(runtime.db),
    )
    policy = mail_policy(settings)
    runtime.on_startup.append(deliveries.ensure_indexes)
    register(runtime, settings, ports, policy)
    register_retry_loop(runtime, settings, ports, policy)
    return runtime


def create_app(settings: NotifySettings | None = None) -> AsgiFastStream:
    """The notify service as an ASGI app (consumers, re-driver, /health, /live, /metrics)."""
    return asgi_app(build(settings or NotifySettings()))
