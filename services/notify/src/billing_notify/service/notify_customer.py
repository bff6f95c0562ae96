"""Use cases: a payment receipt, a credit note, an overdue reminder, to the Billing contacts.

Each is written in the customer's language when its templates exist (else English), to every
contact holding the Billing role (the primary contact, flagged, when none does), once.
"""

from __future__ import annotations

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
from billing_notify.domain.messages import (
    Attachment,
    MessageKind,
    OutgoingEmail,
    compose_email,
    render,
)
from billing_notify.service.customers import addressee
from billing_notify.service.deliver import (
    DeliveryOutcome,
    MailPolicy,
    Mode,
    NotifyPorts,
    Source,
    deliver,
    skipped,
)
from billing_schemas.events import CreditNoteIssued, InvoiceOverdue, PaymentRecorded
from billing_schemas.topics import Topic


async def notify_payment_recorded(
    event: PaymentRecorded, ports: NotifyPorts, policy: MailPolicy, mode: Mode = Mode.SEND
) -> DeliveryOutcome:
    """Send a receipt for the payment: amount, date, reference, what is still owed."""
    payment = event.data
    message_id = payment_message_id(payment)
    kind = MessageKind.PAYMENT_RECORDED

    async def build() -> OutgoingEmail:
        what = f"payment {payment.payment_id} for invoice {payment.invoice_number}"
        to = await addressee(ports.customers, payment.customer_id, kind, what)
        view = payment_view(payment, to.customer.name, to.language, fallback=to.recipients.fallback)
        message = compose_email(
            render(kind, to.language, view),
            sender=policy.sender,
            recipients=to.recipients,
            message_id=message_id,
            sent_at=event.occurred_at,
        )
        return OutgoingEmail(
            kind,
            message_id,
            message,
            to.recipients,
            payment.invoice_id,
            payment.customer_id,
            payment.invoice_number,
        )

    source = Source(Topic.PAYMENT_RECORDED.value, payment.customer_id, event.model_dump_json())
    return await deliver(message_id, build, source, ports, policy, mode=mode)


async def notify_credit_note_issued(
    event: CreditNoteIssued, ports: NotifyPorts, policy: MailPolicy, mode: Mode = Mode.SEND
) -> DeliveryOutcome:
    """Send the credit note (its PDF attached when it has one, checked against its checksum)."""
    note = event.data
    message_id = credit_note_message_id(note)
    kind = MessageKind.CREDIT_NOTE_ISSUED

    async def build() -> OutgoingEmail:
        what = f"credit note {note.credit_note_number}"
        to = await addressee(ports.customers, note.customer_id, kind, what)
        attachments = []
        if note.pdf_file_id is not None:
            pdf = check_pdf(await ports.pdfs.load(note.pdf_file_id), note.pdf_sha256 or "")
            attachments.append(Attachment(credit_note_attachment_name(note), pdf))
        view = credit_note_view(note, to.language, fallback=to.recipients.fallback)
        message = compose_email(
            render(kind, to.language, view),
            sender=policy.sender,
            recipients=to.recipients,
            message_id=message_id,
            sent_at=event.occurred_at,
            attachments=attachments,
        )
        return OutgoingEmail(
            kind,
            message_id,
            message,
            to.recipients,
            note.invoice_id,
            note.customer_id,
            note.invoice_number,
        )

    source = Source(Topic.CREDIT_NOTE_ISSUED.value, note.customer_id, event.model_dump_json())
    return await deliver(message_id, build, source, ports, policy, mode=mode)


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

    async def build() -> OutgoingEmail:
        what = f"overdue invoice {overdue.invoice_number}"
        to = await addressee(ports.customers, overdue.customer_id, kind, what)
        view = overdue_view(overdue, to.language, fallback=to.recipients.fallback)
        message = compose_email(
            render(kind, to.language, view),
            sender=policy.sender,
            recipients=to.recipients,
            message_id=message_id,
            sent_at=event.occurred_at,
        )
        return OutgoingEmail(
            kind,
            message_id,
            message,
            to.recipients,
            overdue.invoice_id,
            overdue.customer_id,
            overdue.invoice_number,
        )

    source = Source(Topic.INVOICE_OVERDUE.value, overdue.customer_id, event.model_dump_json())
    return await deliver(message_id, build, source, ports, policy, mode=mode)
