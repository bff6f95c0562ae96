"""Use cases: a payment receipt, a credit note, an overdue reminder, to the Billing contacts.

Each is written in the customer's language when its templates exist (else English), to every
contact holding the Billing role (the primary contact, flagged, when none does), once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage

from billing_notify.domain.customer_emails import (
    credit_note_attachment_name,
    credit_note_message_id,
    credit_note_view,
    overdue_message_id,
    overdue_view,
    payment_message_id,
    payment_view,
    reminder_step,
)
from billing_notify.domain.invoice_email import check_pdf
from billing_notify.domain.messages import Attachment, MessageKind, compose_email, render
from billing_notify.service.customers import Addressee, deliver_to_customer
from billing_notify.service.deliver import (
    DeliveryOutcome,
    MailPolicy,
    Mode,
    NotifyPorts,
    skipped,
)
from billing_schemas.events import CreditNoteIssued, InvoiceOverdue, PaymentRecorded
from billing_schemas.topics import Topic


def _templated(
    kind: MessageKind,
    to: Addressee,
    view: object,
    *,
    policy: MailPolicy,
    message_id: str,
    sent_at: datetime,
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    """The email of ``kind`` rendered from its templates in the addressee's language."""
    return compose_email(
        render(kind, to.language, view),
        sender=to.sender,
        recipients=to.recipients,
        message_id=message_id,
        sent_at=sent_at,
        attachments=attachments,
    )


async def notify_payment_recorded(
    event: PaymentRecorded, ports: NotifyPorts, policy: MailPolicy, mode: Mode = Mode.SEND
) -> DeliveryOutcome:
    """Send a receipt for the payment: amount, date, reference, what is still owed."""
    payment = event.data
    message_id = payment_message_id(payment)
    kind = MessageKind.PAYMENT_RECORDED

    async def write(to: Addressee) -> EmailMessage:
        view = payment_view(payment, to.customer.name, to.language, fallback=to.recipients.fallback)
        return _templated(
            kind, to, view, policy=policy, message_id=message_id, sent_at=event.occurred_at
        )

    return await deliver_to_customer(
        event,
        payment,
        kind=kind,
        message_id=message_id,
        topic=Topic.PAYMENT_RECORDED,
        what=f"payment {payment.payment_id} for invoice {payment.invoice_number}",
        write=write,
        ports=ports,
        policy=policy,
        mode=mode,
    )


async def notify_credit_note_issued(
    event: CreditNoteIssued, ports: NotifyPorts, policy: MailPolicy, mode: Mode = Mode.SEND
) -> DeliveryOutcome:
    """Send the credit note (its PDF attached when it has one, checked against its checksum)."""
    note = event.data
    message_id = credit_note_message_id(note)
    kind = MessageKind.CREDIT_NOTE_ISSUED

    async def write(to: Addressee) -> EmailMessage:
        attachments = []
        if note.pdf_file_id is not None:
            pdf = check_pdf(await ports.pdfs.load(note.pdf_file_id), note.pdf_sha256 or "")
            attachments.append(Attachment(credit_note_attachment_name(note), pdf))
        view = credit_note_view(note, to.language, fallback=to.recipients.fallback)
        return _templated(
            kind,
            to,
            view,
            policy=policy,
            message_id=message_id,
            sent_at=event.occurred_at,
            attachments=attachments,
        )

    return await deliver_to_customer(
        event,
        note,
        kind=kind,
        message_id=message_id,
        topic=Topic.CREDIT_NOTE_ISSUED,
        what=f"credit note {note.credit_note_number}",
        write=write,
        ports=ports,
        policy=policy,
        mode=mode,
    )


async def notify_invoice_overdue(
    event: InvoiceOverdue, ports: NotifyPorts, policy: MailPolicy, mode: Mode = Mode.SEND
) -> DeliveryOutcome:
    """Send the reminder the schedule (days after the due date) says is due, once per step."""
    overdue = event.data
    if overdue.outstanding <= 0:
        return skipped(f"invoice {overdue.invoice_number} owes nothing")
    step = reminder_step(overdue.days_overdue, policy.overdue_reminder_days)
    if step is None:
        return skipped(
            f"invoice {overdue.invoice_number} is {overdue.days_overdue} days overdue: "
            "before the first reminder"
        )
    message_id = overdue_message_id(overdue, step)
    kind = MessageKind.INVOICE_OVERDUE

    async def write(to: Addressee) -> EmailMessage:
        view = overdue_view(overdue, to.language, fallback=to.recipients.fallback)
        return _templated(
            kind, to, view, policy=policy, message_id=message_id, sent_at=event.occurred_at
        )

    return await deliver_to_customer(
        event,
        overdue,
        kind=kind,
        message_id=message_id,
        topic=Topic.INVOICE_OVERDUE,
        what=f"overdue invoice {overdue.invoice_number}",
        write=write,
        ports=ports,
        policy=policy,
        mode=mode,
    )
