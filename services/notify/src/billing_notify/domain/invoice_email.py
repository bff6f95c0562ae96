"""The email that carries a finalized invoice: pure, no I/O besides reading its templates.

Composing the email twice for the same invoice gives the same message (only the MIME boundaries
differ): its Message-ID is derived from the invoice id and its Date is the finalization time. A
resend is therefore recognisable as the same message (mail clients collapse duplicates by
Message-ID).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from email.message import EmailMessage

from babel.dates import format_date

from billing_notify.domain.errors import InvoicePdfMismatchError
from billing_notify.domain.messages import (
    DEFAULT_LANGUAGE,
    Attachment,
    MessageKind,
    babel_locale,
    compose_email,
    render,
)
from billing_notify.domain.recipients import Mailbox, Recipients, Sender, check_header_value
from billing_schemas.events import FinalizedInvoice
from billing_schemas.money import format_amount
from billing_schemas.periods import month_label


def check_pdf(pdf: bytes, sha256: str) -> bytes:
    """Return the PDF if its checksum is the one recorded at finalization; refuse it otherwise.

    An invoice is immutable once finalized: an email must attach exactly that document.
    """
    actual = hashlib.sha256(pdf).hexdigest()
    if actual != sha256.lower():
        msg = f"stored PDF has sha256 {actual}, the event says {sha256}"
        raise InvoicePdfMismatchError(msg)
    return pdf


def period_label(period: str, language: str = DEFAULT_LANGUAGE) -> str:
    """A ``YYYY-MM`` billing period as people say it: ``2024-09`` -> ``September 2024``; the
    same words as the invoice PDF (:func:`billing_schemas.periods.month_label`)."""
    return month_label(period, babel_locale(language))


def long_date(day: date, language: str = DEFAULT_LANGUAGE) -> str:
    """A date written out in the language (``October 31, 2024``, ``31. Oktober 2024``)."""
    return str(format_date(day, "long", locale=babel_locale(language)))


def money(amount: Decimal, currency: str, language: str = DEFAULT_LANGUAGE) -> str:
    """An amount owed, rounded to minor units (half-up, see docs/money.md), in the language."""
    return format_amount(amount, currency, babel_locale(language))


def attachment_name(invoice: FinalizedInvoice) -> str:
    """The PDF's file name in the email: ``<invoice number>.pdf``."""
    return check_header_value("attachment file name", f"{invoice.invoice_number}.pdf")


@dataclass(frozen=True)
class InvoiceEmailView:
    """What the invoice email templates show, already formatted for people."""

    customer_name: str
    invoice_number: str
    period: str
    issue_date: str
    due_date: str
    subtotal: str
    tax: str
    total: str
    outstanding: str
    attachment_name: str
    fallback: bool
    credit: str | None = None
    """A negative invoice: what it credits the customer (its total, as a positive amount);
    the email then says there is nothing to pay, never a negative amount due."""
    credit_applied: str | None = None
    """Customer credit the invoice took at finalization, as the PDF prints it (negative): the
    row between the total and the amount due, so that they visibly add up."""
    settled_by_credit: bool = False
    """The credit applied leaves nothing to pay."""


def invoice_view(
    invoice: FinalizedInvoice, language: str = DEFAULT_LANGUAGE, *, fallback: bool = False
) -> InvoiceEmailView:
    """The invoice's figures formatted in ``language``."""
    return InvoiceEmailView(
        customer_name=invoice.customer_name,
        invoice_number=invoice.invoice_number,
        period=period_label(invoice.period, language),
        issue_date=long_date(invoice.issue_date, language),
        due_date=long_date(invoice.due_date, language),
        subtotal=money(invoice.subtotal, invoice.currency, language),
        tax=money(invoice.tax, invoice.currency, language),
        total=money(invoice.total, invoice.currency, language),
        outstanding=money(invoice.outstanding, invoice.currency, language),
        attachment_name=attachment_name(invoice),
        fallback=fallback,
        credit=money(-invoice.total, invoice.currency, language) if invoice.total < 0 else None,
        credit_applied=(
            money(-invoice.credit_applied, invoice.currency, language)
            if invoice.credit_applied
            else None
        ),
        settled_by_credit=bool(invoice.credit_applied) and invoice.outstanding == 0,
    )


def invoice_subject(invoice: FinalizedInvoice, language: str = DEFAULT_LANGUAGE) -> str:
    """``Invoice <number> for <Month YYYY>: <total>`` (in ``language``), total in minor units."""
    return render(MessageKind.INVOICE_FINALIZED, language, invoice_view(invoice, language)).subject


def compose_invoice_email(
    invoice: FinalizedInvoice,
    *,
    recipients: Recipients,
    sender: Mailbox | Sender,
    pdf: bytes,
    message_id: str,
    sent_at: datetime,
    language: str = DEFAULT_LANGUAGE,
) -> EmailMessage:
    """The email of a finalized invoice: text and HTML alternatives plus the PDF attached.

    ``language`` must have templates (see ``billing_notify.domain.messages.choose_language``).
    ``sent_at`` becomes the Date header: pass the finalization time so that a resend is the
    identical message.
    """
    view = invoice_view(invoice, language, fallback=recipients.fallback)
    return compose_email(
        render(MessageKind.INVOICE_FINALIZED, language, view),
        sender=sender,
        recipients=recipients,
        message_id=message_id,
        sent_at=sent_at,
        attachments=[Attachment(view.attachment_name, pdf)],
    )
