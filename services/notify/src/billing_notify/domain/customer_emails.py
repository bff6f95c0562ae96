"""Customer emails other than the invoice: payment receipt, credit note, overdue reminder.

Pure: each function turns an event's payload into the views its templates show; the Message-ID
of each is derived from what makes the email unique, so a redelivered event finds it logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from billing_notify.domain.invoice_email import long_date, money
from billing_notify.domain.messages import MessageKind, message_id_for
from billing_schemas.events import CreditNote, OverdueInvoice, Payment


@dataclass(frozen=True)
class PaymentReceiptView:
    """What a payment receipt shows."""

    customer_name: str
    invoice_number: str
    amount: str
    paid_on: str
    method: str
    reference: str
    outstanding_after: str
    settled: bool
    fallback: bool


def payment_message_id(payment: Payment) -> str:
    """One receipt per payment."""
    return message_id_for(MessageKind.PAYMENT_RECORDED, payment.payment_id)


def payment_view(
    payment: Payment, customer_name: str, language: str, *, fallback: bool
) -> PaymentReceiptView:
    """The payment's figures formatted in ``language``; ``settled`` when nothing is owed after."""
    return PaymentReceiptView(
        customer_name=customer_name,
        invoice_number=payment.invoice_number,
        amount=money(payment.amount, payment.currency, language),
        paid_on=long_date(payment.paid_on, language),
        method=payment.method,
        reference=payment.reference,
        outstanding_after=money(payment.outstanding_after, payment.currency, language),
        settled=payment.outstanding_after <= 0,
        fallback=fallback,
    )


@dataclass(frozen=True)
class CreditNoteView:
    """What a credit-note email shows."""

    customer_name: str
    credit_note_number: str
    invoice_number: str
    issue_date: str
    total: str
    reason: str
    attachment_name: str | None
    fallback: bool


def credit_note_message_id(note: CreditNote) -> str:
    """One email per credit note."""
    return message_id_for(MessageKind.CREDIT_NOTE_ISSUED, note.credit_note_id)


def credit_note_attachment_name(note: CreditNote) -> str:
    """The credit note PDF's file name: ``<credit note number>.pdf``."""
    return f"{note.credit_note_number}.pdf"


def credit_note_view(note: CreditNote, language: str, *, fallback: bool) -> CreditNoteView:
    """The credit note's figures formatted in ``language``."""
    return CreditNoteView(
        customer_name=note.customer_name,
        credit_note_number=note.credit_note_number,
        invoice_number=note.invoice_number,
        issue_date=long_date(note.issue_date, language),
        total=money(note.total, note.currency, language),
        reason=note.reason,
        attachment_name=credit_note_attachment_name(note) if note.pdf_file_id else None,
        fallback=fallback,
    )


def reminder_step(days_overdue: int, schedule: Sequence[int]) -> int | None:
    """The reminder an invoice this many days overdue is due for: the latest step of the
    schedule (days after the due date) it has reached, or None before the first.

    An invoice 9 days overdue with the schedule (7, 14, 30) is due the 7-day reminder; each
    step is sent once (its Message-ID names the step), so daily overdue events send one email
    per step, and a step whose day was missed is still sent on a later day.
    """
    reached = [day for day in schedule if day <= days_overdue]
    return max(reached) if reached else None


def overdue_message_id(overdue: OverdueInvoice, step: int) -> str:
    """One reminder per invoice and schedule step."""
    return message_id_for(MessageKind.INVOICE_OVERDUE, f"{overdue.invoice_id}:{step}")


@dataclass(frozen=True)
class OverdueReminderView:
    """What an overdue reminder shows."""

    customer_name: str
    invoice_number: str
    due_date: str
    days_overdue: int
    total: str
    outstanding: str
    fallback: bool


def overdue_view(overdue: OverdueInvoice, language: str, *, fallback: bool) -> OverdueReminderView:
    """The overdue invoice's figures formatted in ``language``."""
    return OverdueReminderView(
        customer_name=overdue.customer_name,
        invoice_number=overdue.invoice_number,
        due_date=long_date(overdue.due_date, language),
        days_overdue=overdue.days_overdue,
        total=money(overdue.total, overdue.currency, language),
        outstanding=money(overdue.outstanding, overdue.currency, language),
        fallback=fallback,
    )
