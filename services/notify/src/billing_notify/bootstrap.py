"""Wiring of notify's adapters into its use cases, for the service and the ``billing mail``
commands alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_notify.adapters.catalog import MongoCustomerDirectory
from billing_notify.adapters.delivery_log import MongoDeliveryLog
from billing_notify.adapters.documents import HttpInvoicePdfs
from billing_notify.adapters.mailer import SmtpMailer
from billing_notify.adapters.reconciliations import MongoReconciliations
from billing_notify.ports import InvoicePdfs, Mailer
from billing_notify.service.deliver import MailPolicy, NotifyPorts
from billing_notify.settings import NotifySettings
from billing_runtime.mongo import command_database


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


def smtp_mailer(settings: NotifySettings) -> SmtpMailer:
    """The mail system the settings name (host, port, TLS, credentials, timeout)."""
    password = settings.smtp_password
    return SmtpMailer(
        settings.smtp_host,
        settings.smtp_port,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=None if password is None else password.get_secret_value(),
        timeout_seconds=settings.smtp_timeout_seconds,
    )


def invoice_pdfs(settings: NotifySettings) -> HttpInvoicePdfs:
    """The issued documents, read through invoicing's API with notify's document-reader token
    (a missing token fails here, at start, rather than at the first invoice)."""
    if settings.invoicing_token is None:
        msg = (
            "BILLING_NOTIFY_INVOICING_TOKEN must be set: notify reads the PDFs it attaches "
            "through invoicing's API (one of BILLING_INVOICING_DOCUMENT_READER_TOKENS)"
        )
        raise ValueError(msg)
    return HttpInvoicePdfs(
        settings.invoicing_url,
        settings.invoicing_token.get_secret_value(),
        timeout_seconds=settings.invoicing_timeout_seconds,
    )


def build_ports(
    db: AsyncDatabase[dict[str, Any]],
    settings: NotifySettings,
    mailer: Mailer | None = None,
    pdfs: InvoicePdfs | None = None,
) -> NotifyPorts:
    """The use cases' ports over MongoDB (catalog, delivery log, reconciliations), invoicing's
    API (the PDFs) and SMTP (unless another mailer or PDF source is given: in-memory ones in
    tests)."""
    return NotifyPorts(
        customers=MongoCustomerDirectory(db),
        pdfs=pdfs or invoice_pdfs(settings),
        deliveries=MongoDeliveryLog(db),
        mailer=mailer or smtp_mailer(settings),
        reconciliations=MongoReconciliations(db),
    )


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    """The indexes notify's own collections need (the delivery log's)."""
    await MongoDeliveryLog(db).ensure_indexes()


@asynccontextmanager
async def delivery_log_context(
    settings: NotifySettings | None = None,
) -> AsyncIterator[MongoDeliveryLog]:
    """The delivery log for one ``billing mail`` command (its listing reads included)."""
    settings = settings or NotifySettings()
    async with command_database(settings) as db:
        yield MongoDeliveryLog(db)
