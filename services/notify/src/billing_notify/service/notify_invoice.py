"""Use case: email a finalized invoice, PDF attached, to the customer's Billing contacts, once."""

from __future__ import annotations

from email.message import EmailMessage

from billing_notify.domain.invoice_email import check_pdf, compose_invoice_email
from billing_notify.domain.messages import MessageKind, message_id_for
from billing_notify.service.customers import Addressee, deliver_to_customer
from billing_notify.service.deliver import (
    DeliveryOutcome,
    MailPolicy,
    Mode,
    NotifyPorts,
    skipped,
)
from billing_schemas.events import InvoiceFinalized
from billing_schemas.topics import Topic


async def notify_invoice_finalized(
    event: InvoiceFinalized, ports: NotifyPorts, policy: MailPolicy, mode: Mode = Mode.SEND
) -> DeliveryOutcome:
    """Email the finalized invoice with its stored PDF (checked against the event's checksum)
    in the customer's language; skipped for a total of zero unless ``policy`` says otherwise.

    Raises :class:`~billing_notify.domain.errors.NotificationError` when it cannot be written
    (unknown customer, no contact, PDF missing or altered, unsafe header).
    """
    invoice = event.data
    if invoice.total == 0 and not policy.send_zero_amount_invoices:
        return skipped(f"invoice {invoice.invoice_number} totals zero (configurable)")
    message_id = message_id_for(MessageKind.INVOICE_FINALIZED, invoice.invoice_id)

    async def write(to: Addressee) -> EmailMessage:
        pdf = check_pdf(await ports.pdfs.load(invoice.pdf_file_id), invoice.pdf_sha256)
        return compose_invoice_email(
            invoice,
            recipients=to.recipients,
            sender=to.sender,
            pdf=pdf,
            message_id=message_id,
            sent_at=event.occurred_at,
            language=to.language,
        )

    return await deliver_to_customer(
        event,
        invoice,
        kind=MessageKind.INVOICE_FINALIZED,
        message_id=message_id,
        topic=Topic.INVOICE_FINALIZED,
        what=f"invoice {invoice.invoice_number}",
        write=write,
        ports=ports,
        policy=policy,
        mode=mode,
        entity_id=invoice.invoicing_entity_id,
    )
