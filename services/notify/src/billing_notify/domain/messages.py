"""What every email notify sends has in common: its kind, its Message-ID, its language, its
templates and its MIME structure. Pure: no I/O besides reading the packaged templates.

Templates live in ``templates/<language>/<kind>.{subject,txt,html}.j2``. An email is written in
the customer's language when that kind has templates in it (``de-CH`` tries ``de-ch``, then
``de``), else in English; amounts and dates are formatted for the language chosen, so a German
text never shows an English date.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from billing_notify.domain.recipients import Mailbox, Recipients, Sender, check_header_value

MESSAGE_ID_DOMAIN = "billing.invalid"
"""Right-hand side of our Message-IDs: ``.invalid`` can never clash with a real host's ids."""

DEFAULT_LANGUAGE = "en"
"""Every kind has English templates; any other language is optional."""


class MessageKind(StrEnum):
    """The kinds of email notify sends; part of each Message-ID and each template's name."""

    INVOICE_FINALIZED = "invoice-finalized"
    PAYMENT_RECORDED = "payment-recorded"
    CREDIT_NOTE_ISSUED = "credit-note-issued"
    INVOICE_OVERDUE = "invoice-overdue"
    BILL_PROCESSED = "bill-processed"


def message_id_for(kind: MessageKind, subject_id: str) -> str:
    """The Message-ID of the one email of ``kind`` about ``subject_id`` (e.g. an invoice id).

    Deterministic: ``<{kind}.{first 24 hex digits of sha256(subject_id)}@billing.invalid>``.
    Hashing keeps any character of the id out of the header and 96 bits keep ids distinct.
    """
    digest = hashlib.sha256(subject_id.encode()).hexdigest()[:24]
    return f"<{kind.value}.{digest}@{MESSAGE_ID_DOMAIN}>"


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


@cache
def _languages_of(kind: MessageKind) -> frozenset[str]:
    names = _templates().list_templates()
    return frozenset(
        name.split("/", 1)[0] for name in names if name.endswith(f"/{kind.value}.txt.j2")
    )


def choose_language(kind: MessageKind, requested: str | None) -> str:
    """The language an email of ``kind`` is written in: the requested one if it has templates
    (``de-CH`` falls back to ``de``), else English."""
    available = _languages_of(kind)
    wanted = (requested or "").strip().replace("_", "-").lower()
    for candidate in (wanted, wanted.split("-", 1)[0]):
        if candidate and candidate in available:
            return candidate
    return DEFAULT_LANGUAGE


def babel_locale(language: str) -> str:
    """The Babel locale of a template language (``de-ch`` -> ``de_CH``)."""
    primary, _, region = language.partition("-")
    return f"{primary}_{region.upper()}" if region else primary


@dataclass(frozen=True)
class Rendered:
    """An email's texts in one language."""

    language: str
    subject: str
    text: str
    html: str


def render(kind: MessageKind, language: str, view: object) -> Rendered:
    """Render the subject, text and HTML templates of ``kind`` in ``language`` with ``v=view``.

    The subject is one line: a line break in it (from data shown in it) is refused.
    """
    env = _templates()
    subject = env.get_template(f"{language}/{kind.value}.subject.j2").render(v=view).strip()
    return Rendered(
        language=language,
        subject=check_header_value("Subject", subject),
        text=env.get_template(f"{language}/{kind.value}.txt.j2").render(v=view),
        html=env.get_template(f"{language}/{kind.value}.html.j2").render(v=view),
    )


@dataclass(frozen=True)
class Attachment:
    """A file attached to an email."""

    filename: str
    content: bytes
    maintype: str = "application"
    subtype: str = "pdf"


def _header_address(mailbox: Mailbox) -> Address:
    return Address(display_name=mailbox.name or "", addr_spec=mailbox.address)


def compose_email(
    rendered: Rendered,
    *,
    sender: Mailbox | Sender,
    recipients: Recipients,
    message_id: str,
    sent_at: datetime,
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    """A multipart email: text and HTML alternatives, then the attachments. ``sender`` is the
    From mailbox, or a :class:`Sender` with a Reply-To as well.

    Every header value is checked for line breaks first (:class:`UnsafeHeaderError`), whatever
    its source; addresses go through ``email.headerregistry.Address``, which quotes display
    names. ``sent_at`` becomes the Date header: pass the time of the fact the email reports, so
    that composing it again gives the same message (only MIME boundaries differ).
    """
    check_header_value("Message-ID", message_id)
    writer = sender if isinstance(sender, Sender) else Sender(sender)
    reply_to = () if writer.reply_to is None else (writer.reply_to,)
    for mailbox in (writer.from_, *reply_to, *recipients.mailboxes):
        check_header_value("address", mailbox.address)
        check_header_value("display name", mailbox.name or "")
    for attachment in attachments:
        check_header_value("attachment file name", attachment.filename)

    message = EmailMessage()
    message["From"] = _header_address(writer.from_)
    if writer.reply_to is not None:
        message["Reply-To"] = _header_address(writer.reply_to)
    message["To"] = tuple(_header_address(m) for m in recipients.mailboxes)
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies, please
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    for attachment in attachments:
        message.add_attachment(
            attachment.content,
            maintype=attachment.maintype,
            subtype=attachment.subtype,
            filename=attachment.filename,
        )
    # after the parts: set_content() and add_alternative() move or drop Content-* headers
    message["Content-Language"] = rendered.language
    return message


@dataclass(frozen=True)
class OutgoingEmail:
    """An email ready to go, with what the delivery log records about it."""

    kind: MessageKind
    message_id: str
    message: EmailMessage
    recipients: Recipients
    invoice_id: str | None = None
    customer_id: str | None = None
    invoice_number: str | None = None
