"""The email that carries a finalized invoice: pure, no I/O besides reading its templates.

Composing the email twice for the same invoice gives the same message (only the MIME boundaries
differ): its Message-ID is derived from the invoice id and its Date is the finalization time. A
resend after a crash is therefore recognisable as the same message (mail clients collapse
duplicates by Message-ID), which is the closest email gets to exactly once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from functools import cache

from babel.dates import format_date
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from billing_notify.domain.errors import InvoicePdfMismatchError
from billing_notify.domain.recipients import Mailbox, Recipients, check_header_value
from billing_schemas.events import FinalizedInvoice
from billing_schemas.money import format_amount

MESSAGE_ID_DOMAIN = "billing.invalid"
"""Right-hand side of our Message-IDs: ``.invalid`` can never clash with a real host's ids."""

TEMPLATE_LOCALE = "en"
"""The templates are written in English, so amounts and dates use English conventions too."""


class MessageKind(StrEnum):
    """The kinds of email notify sends; part of each Message-ID."""

    INVOICE_FINALIZED = "invoice-finalized"


def message_id_for(kind: MessageKind, subject_id: str) -> str:
    """The Message-ID of the one email of ``kind`` about ``subject_id`` (e.g. an invoice id).

    Deterministic: ``<{kind}.{first 24 hex digits of sha256(subject_id)}@billing.invalid>``.
    Hashing keeps any character of the id out of the header and 96 bits keep ids distinct.
    """
    digest = hashlib.sha256(subject_id.encode()).hexdigest()[:24]
    return f"<{kind.value}.{digest}@{MESSAGE_ID_DOMAIN}>"


def check_pdf(pdf: bytes, sha256: str) -> bytes:
    """Return the PDF if its checksum is the one recorded at finalization; refuse it otherwise.

    An invoice is immutable once finalized: an email must attach exactly that document.
    """
    actual = hashlib.sha256(pdf).hexdigest()
    if actual != sha256.lower():
        msg = f"stored invoice PDF has sha256 {actual}, the finalized invoice says {sha256}"
        raise InvoicePdfMismatchError(msg)
    return pdf


def period_label(period: str) -> str:
    """A ``YYYY-MM`` billing period as people say it: ``2024-09`` -> ``September 2024``."""
    year, month = (int(part) for part in period.split("-"))
    return str(format_date(date(year, month, 1), "MMMM y", locale=TEMPLATE_LOCALE))


def invoice_subject(invoice: FinalizedInvoice) -> str:
    """``Invoice <number> for <Month YYYY>: <total>``, the total rounded to minor units."""
    total = format_amount(invoice.total, invoice.currency, TEMPLATE_LOCALE)
    return f"Invoice {invoice.invoice_number} for {period_label(invoice.period)}: {total}"


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


def _view(invoice: FinalizedInvoice, recipients: Recipients) -> InvoiceEmailView:
    def money(amount: Decimal) -> str:
        return format_amount(amount, invoice.currency, TEMPLATE_LOCALE)

    return InvoiceEmailView(
        customer_name=invoice.customer_name,
        invoice_number=invoice.invoice_number,
        period=period_label(invoice.period),
        issue_date=str(format_date(invoice.issue_date, "long", locale=TEMPLATE_LOCALE)),
        due_date=str(format_date(invoice.due_date, "long", locale=TEMPLATE_LOCALE)),
        subtotal=money(invoice.subtotal),
        tax=money(invoice.tax),
        total=money(invoice.total),
        outstanding=money(invoice.outstanding),
        attachment_name=attachment_name(invoice),
        fallback=recipients.fallback,
    )


def attachment_name(invoice: FinalizedInvoice) -> str:
    """The PDF's file name in the email: ``<invoice number>.pdf``."""
    return check_header_value("attachment file name", f"{invoice.invoice_number}.pdf")


@cache
def _templates() -> Environment:
    # Autoescape the HTML part only: the plain-text part must show "Smith & Sons" as written.
    return Environment(
        loader=PackageLoader("billing_notify", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _header_address(mailbox: Mailbox) -> Address:
    return Address(display_name=mailbox.name or "", addr_spec=mailbox.address)


def compose_invoice_email(
    invoice: FinalizedInvoice,
    *,
    recipients: Recipients,
    sender: Mailbox,
    pdf: bytes,
    message_id: str,
    sent_at: datetime,
) -> EmailMessage:
    """The email of a finalized invoice: text and HTML alternatives plus the PDF attached.

    Every header value is checked for line breaks first (:class:`UnsafeHeaderError`), whatever
    its source; the HTML part is rendered with autoescaping on. ``sent_at`` becomes the Date
    header: pass the finalization time so that a resend is the identical message.
    """
    subject = check_header_value("Subject", invoice_subject(invoice))
    check_header_value("Message-ID", message_id)
    for mailbox in (sender, *recipients.mailboxes):
        check_header_value("address", mailbox.address)
        check_header_value("display name", mailbox.name or "")
    view = _view(invoice, recipients)

    message = EmailMessage()
    message["From"] = _header_address(sender)
    message["To"] = tuple(_header_address(m) for m in recipients.mailboxes)
    message["Subject"] = subject
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies, please
    message.set_content(_templates().get_template("invoice_finalized.txt.j2").render(v=view))
    message.add_alternative(
        _templates().get_template("invoice_finalized.html.j2").render(v=view), subtype="html"
    )
    message.add_attachment(
        pdf, maintype="application", subtype="pdf", filename=view.attachment_name
    )
    return message
