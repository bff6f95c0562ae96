"""Use case: email a finalized invoice to the customer's billing contacts, once.

"Once" is kept by the delivery log, keyed by the email's deterministic Message-ID:

1. a sent record means the email went out before (a redelivered event): send nothing;
2. otherwise record the intent (``pending``) *before* talking to the SMTP server;
3. after the server accepted the email, record ``sent`` with its response.

A crash between 2 and 3 leaves ``pending``: the redelivered event sends the email again, with
the same Message-ID, Date and content, which mail clients show as one message. That window (one
SMTP reply) is the only way to a second copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from billing_notify.adapters.catalog import CustomerDirectory
from billing_notify.adapters.delivery_log import DeliveryLog
from billing_notify.adapters.documents import InvoicePdfs
from billing_notify.adapters.mailer import Mailer, PermanentMailError
from billing_notify.domain.delivery import DeliveryIntent
from billing_notify.domain.errors import UnknownCustomerError
from billing_notify.domain.invoice_email import (
    MessageKind,
    check_pdf,
    compose_invoice_email,
    message_id_for,
)
from billing_notify.domain.recipients import Mailbox, choose_recipients
from billing_schemas.events import InvoiceFinalized, Notification, NotificationSent

SOURCE = "billing-notify"

log = logging.getLogger("billing.notify")


@dataclass(frozen=True)
class NotifyPorts:
    """What the use case talks to."""

    customers: CustomerDirectory
    pdfs: InvoicePdfs
    deliveries: DeliveryLog
    mailer: Mailer


@dataclass(frozen=True)
class MailPolicy:
    """How notify writes: from whom, and whether invoices of zero are worth an email."""

    sender: Mailbox
    send_zero_amount_invoices: bool = False


async def notify_invoice_finalized(
    event: InvoiceFinalized, ports: NotifyPorts, policy: MailPolicy
) -> Notification | None:
    """Email the finalized invoice with its PDF; return what was sent, or None if skipped.

    An invoice with a total of zero is skipped unless ``policy`` says otherwise. An email that
    was sent before is not sent again: its logged notification is returned, so that a
    ``NotificationSent`` lost in a crash is published on redelivery (with the same event id).
    Raises :class:`~billing_notify.domain.errors.NotificationError` (permanent: the event is
    dead-lettered; a refused email is logged ``failed``) or
    :class:`~billing_notify.adapters.mailer.TransientMailError` (retry later).
    """
    invoice = event.data
    if invoice.total == 0 and not policy.send_zero_amount_invoices:
        log.info("invoice %s totals zero: no email (configurable)", invoice.invoice_number)
        return None
    message_id = message_id_for(MessageKind.INVOICE_FINALIZED, invoice.invoice_id)
    previous = await ports.deliveries.get(message_id)
    if previous is not None and previous.sent:
        log.info("invoice %s was emailed before: not again", invoice.invoice_number)
        return previous.notification()

    customer = await ports.customers.customer(invoice.customer_id)
    if customer is None:
        msg = (
            f"invoice {invoice.invoice_number}: customer {invoice.customer_id!r} "
            "is not in the catalog"
        )
        raise UnknownCustomerError(msg)
    recipients = choose_recipients(customer)
    if recipients.fallback:
        log.warning(
            "customer %s has no Billing contact: invoice %s goes to %s",
            customer.id,
            invoice.invoice_number,
            ", ".join(recipients.addresses),
        )
    pdf = check_pdf(await ports.pdfs.load(invoice.pdf_file_id), invoice.pdf_sha256)
    message = compose_invoice_email(
        invoice,
        recipients=recipients,
        sender=policy.sender,
        pdf=pdf,
        message_id=message_id,
        sent_at=event.occurred_at,
    )

    claimed = await ports.deliveries.claim(
        DeliveryIntent(
            message_id=message_id,
            kind=MessageKind.INVOICE_FINALIZED.value,
            invoice_id=invoice.invoice_id,
            customer_id=invoice.customer_id,
            recipients=tuple(recipients.addresses),
        )
    )
    if claimed.sent:  # another consumer sent it since we looked
        return claimed.notification()
    try:
        response = await ports.mailer.send(
            message, sender=policy.sender.address, recipients=recipients.addresses
        )
    except PermanentMailError as exc:
        await ports.deliveries.mark_failed(message_id, str(exc))
        raise
    sent = await ports.deliveries.mark_sent(message_id, response)
    log.info(
        "emailed invoice %s to %s (attempt %d): %s",
        invoice.invoice_number,
        ", ".join(recipients.addresses),
        sent.attempts,
        response,
    )
    return sent.notification()


def notification_sent(notification: Notification, cause: InvoiceFinalized) -> NotificationSent:
    """The event of a sent email; its id derives from the Message-ID, so republishing it after
    a redelivery yields the same event, which consumers store once."""
    return NotificationSent.create(
        notification,
        source=SOURCE,
        correlation_id=cause.correlation_id,
        event_id=f"notification-sent:{notification.message_id.strip('<>')}",
    )
