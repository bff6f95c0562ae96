"""Notify's rules with in-memory fakes: who gets the invoice, what the email is, sent once."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPServerDisconnected,
)
from pydantic import ValidationError

from billing_catalog.models import Address, Contact, ContactRole, Customer, PriceList
from billing_notify.adapters.mailer import classify_smtp_error
from billing_notify.adapters.memory import (
    InMemoryCustomerDirectory,
    InMemoryDeliveryLog,
    InMemoryInvoicePdfs,
    InMemoryMailer,
)
from billing_notify.domain.customer_emails import credit_note_view
from billing_notify.domain.delivery import DeliveryStatus
from billing_notify.domain.errors import (
    InvalidAddressError,
    InvoicePdfMismatchError,
    InvoicePdfMissingError,
    NoRecipientError,
    UnknownCustomerError,
    UnsafeHeaderError,
)
from billing_notify.domain.invoice_email import (
    compose_invoice_email,
    invoice_subject,
    invoice_view,
    period_label,
)
from billing_notify.domain.messages import MessageKind, choose_language, message_id_for, render
from billing_notify.domain.recipients import (
    Mailbox,
    Recipients,
    choose_recipients,
    parse_mailbox,
)
from billing_notify.ports import PermanentMailError, TransientMailError
from billing_notify.service.deliver import (
    MailPolicy,
    Mode,
    NotifyPorts,
    Result,
    notification_sent,
)
from billing_notify.service.notify_invoice import notify_invoice_finalized
from billing_notify.settings import NotifySettings
from billing_schemas.events import CreditNote, FinalizedInvoice, InvoiceFinalized
from billing_schemas.periods import month_label

PDF = b"%PDF-1.7\n% a tiny stand-in for an invoice document\n%%EOF\n"
PDF_ID = "66f0c0ffee0000000000abcd"
SENDER = parse_mailbox("Billing <billing@example.com>")
FINALIZED_AT = datetime(2024, 10, 1, 6, 30, tzinfo=UTC)


def _contact(
    email_: str, *roles: ContactRole, name: str | None = None, primary: bool = False
) -> Contact:
    return Contact(email=email_, name=name, roles=list(roles), primary=primary)


def _customer(*contacts: Contact, name: str = "Acme Corp") -> Customer:
    return Customer(
        id="acme",
        name=name,
        address=Address(lines=["1 Main St"], country="US"),
        currency="USD",
        invoicing_entity="cumulus",
        contacts=list(contacts),
        price_list=PriceList(id="std"),
    )


ACME = _customer(
    _contact("ap@acme.example", ContactRole.BILLING, name="Accounts Payable"),
    _contact("cfo@acme.example", ContactRole.BILLING, ContactRole.DPO, name="Dana Whitfield"),
    _contact("ops@acme.example", ContactRole.TECH, name="Cloud Ops", primary=True),
)


def _invoice(
    *,
    total: str = "1234.555",
    number: str = "ACME-2024-000001",
    invoice_id: str = "inv-acme-2024-09",
    customer_name: str = "Acme Corp",
    pdf: bytes = PDF,
) -> FinalizedInvoice:
    return FinalizedInvoice(
        invoice_id=invoice_id,
        invoice_number=number,
        customer_id="acme",
        customer_name=customer_name,
        invoicing_entity_id="cumulus",
        period="2024-09",
        issue_date=date(2024, 10, 1),
        due_date=date(2024, 10, 31),
        currency="USD",
        subtotal=Decimal(total),
        tax=Decimal(0),
        total=Decimal(total),
        outstanding=Decimal(total),
        line_count=3,
        pdf_file_id=PDF_ID,
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
    )


def _event(invoice: FinalizedInvoice | None = None) -> InvoiceFinalized:
    return InvoiceFinalized.create(
        invoice or _invoice(),
        source="billing-invoicing",
        correlation_id="close-2024-09",
        event_id="invoice-finalized:inv-acme-2024-09",
        occurred_at=FINALIZED_AT,
    )


def _reparse(message: EmailMessage) -> EmailMessage:
    """The message as a receiver sees it: serialized, then parsed again."""
    parsed: Any = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# --- recipients ----------------------------------------------------------------------------


def test_recipients_are_exactly_the_billing_contacts() -> None:
    recipients = choose_recipients(ACME)
    assert recipients.addresses == ["ap@acme.example", "cfo@acme.example"]
    assert [m.name for m in recipients.mailboxes] == ["Accounts Payable", "Dana Whitfield"]
    assert recipients.fallback is False


def test_a_mailbox_listed_twice_gets_one_copy() -> None:
    customer = _customer(
        _contact("ap@acme.example", ContactRole.BILLING),
        _contact("AP@ACME.example", ContactRole.BILLING, ContactRole.DPO),
    )
    assert choose_recipients(customer).addresses == ["ap@acme.example"]


def test_without_a_billing_contact_the_primary_contact_gets_it_flagged() -> None:
    customer = _customer(
        _contact("dev@acme.example", ContactRole.TECH),
        _contact("boss@acme.example", ContactRole.DPO, primary=True),
    )
    recipients = choose_recipients(customer)
    assert recipients.addresses == ["boss@acme.example"]
    assert recipients.fallback is True


def test_without_billing_or_primary_contact_the_first_contact_gets_it() -> None:
    customer = _customer(
        _contact("dev@acme.example", ContactRole.TECH), _contact("dpo@acme.example")
    )
    assert choose_recipients(customer).addresses == ["dev@acme.example"]
    assert choose_recipients(customer).fallback is True


def test_a_customer_without_contacts_cannot_be_written_to() -> None:
    with pytest.raises(NoRecipientError, match="no contact"):
        choose_recipients(_customer())


# --- header injection and address validation -----------------------------------------------


def test_a_line_break_in_a_contact_name_is_refused() -> None:
    # the catalog refuses such a name (billing_catalog.models.Name); model_construct skips
    # that, as a hand-edited document could: notify checks again before any header is written
    smuggled = Contact.model_construct(
        email="ap@acme.example", name="AP\r\nBcc: thief@evil.example", roles=[ContactRole.BILLING]
    )
    with pytest.raises(UnsafeHeaderError, match="line break"):
        choose_recipients(_customer().model_copy(update={"contacts": [smuggled]}))
    with pytest.raises(ValidationError, match="control characters"):
        _contact("ap@acme.example", ContactRole.BILLING, name="AP\r\nBcc: thief@evil.example")


def test_an_address_that_bypassed_catalog_validation_is_checked_again() -> None:
    # model_construct skips pydantic's EmailStr check, as a hand-edited document could
    smuggled = Contact.model_construct(
        email="ap@acme.example\nBcc: thief@evil.example", roles=[ContactRole.BILLING]
    )
    with pytest.raises(UnsafeHeaderError):
        choose_recipients(_customer().model_copy(update={"contacts": [smuggled]}))
    broken = Contact.model_construct(email="not-an-address", roles=[ContactRole.BILLING])
    with pytest.raises(InvalidAddressError):
        choose_recipients(_customer().model_copy(update={"contacts": [broken]}))


def test_a_line_break_in_the_invoice_number_is_refused() -> None:
    invoice = _invoice(number="ACME-1\r\nBcc: thief@evil.example")
    # the number is in the subject and the attachment's name: refused before either is written
    with pytest.raises(UnsafeHeaderError, match="line break"):
        compose_invoice_email(
            invoice,
            recipients=choose_recipients(ACME),
            sender=SENDER,
            pdf=PDF,
            message_id=message_id_for(MessageKind.INVOICE_FINALIZED, invoice.invoice_id),
            sent_at=FINALIZED_AT,
        )


def test_a_mailbox_built_around_validation_is_refused_when_composing() -> None:
    forged = Recipients((Mailbox(address="ap@acme.example", name="AP\nBcc: x@evil.example"),))
    with pytest.raises(UnsafeHeaderError):
        compose_invoice_email(
            _invoice(),
            recipients=forged,
            sender=SENDER,
            pdf=PDF,
            message_id="<x@billing.invalid>",
            sent_at=FINALIZED_AT,
        )


@pytest.mark.parametrize(
    ("text", "address", "name"),
    [
        ("Billing <billing@example.com>", "billing@example.com", "Billing"),
        (
            '"Cumulus, Billing" <billing@Cumulus.Example>',
            "billing@cumulus.example",
            "Cumulus, Billing",
        ),
        ("billing@example.com", "billing@example.com", None),
    ],
)
def test_sender_mailboxes_parse(text: str, address: str, name: str | None) -> None:
    assert parse_mailbox(text) == Mailbox(address=address, name=name)


@pytest.mark.parametrize(
    "text",
    ["Billing <billing@example.com>\r\nBcc: x@evil.example", "Billing <nope>", "<<>>", ""],
)
def test_bad_sender_mailboxes_are_refused(text: str) -> None:
    with pytest.raises((InvalidAddressError, UnsafeHeaderError)):
        parse_mailbox(text)


def test_settings_refuse_a_bad_sender_at_start() -> None:
    with pytest.raises(ValidationError, match="sender"):
        NotifySettings(sender="Billing <billing@example.com>\nBcc: x@evil.example")
    with pytest.raises(ValidationError, match="smtp_password"):
        NotifySettings(smtp_username="billing")


# --- the message ----------------------------------------------------------------------------


def test_message_id_is_deterministic_per_kind_and_invoice() -> None:
    first = message_id_for(MessageKind.INVOICE_FINALIZED, "inv-1")
    assert first == message_id_for(MessageKind.INVOICE_FINALIZED, "inv-1")
    assert first != message_id_for(MessageKind.INVOICE_FINALIZED, "inv-2")
    digest = hashlib.sha256(b"inv-1").hexdigest()[:24]
    assert first == f"<invoice-finalized.{digest}@billing.invalid>"
    assert re.fullmatch(r"<invoice-finalized\.[0-9a-f]{24}@billing\.invalid>", first)


def test_subject_names_number_period_and_rounded_total() -> None:
    assert period_label("2024-09") == "September 2024"
    assert invoice_subject(_invoice()) == "Invoice ACME-2024-000001 for September 2024: $1,234.56"


def test_the_email_has_text_html_and_the_pdf_attached() -> None:
    invoice = _invoice(customer_name="Smith & <Sons>")
    message_id = message_id_for(MessageKind.INVOICE_FINALIZED, invoice.invoice_id)
    composed = compose_invoice_email(
        invoice,
        recipients=choose_recipients(ACME),
        sender=SENDER,
        pdf=PDF,
        message_id=message_id,
        sent_at=FINALIZED_AT,
    )
    mail = _reparse(composed)
    assert mail["Subject"] == "Invoice ACME-2024-000001 for September 2024: $1,234.56"
    assert mail["From"] == "Billing <billing@example.com>"
    assert [a.addr_spec for a in mail["To"].addresses] == ["ap@acme.example", "cfo@acme.example"]
    assert mail["Message-ID"] == message_id
    assert mail["Date"].datetime == FINALIZED_AT
    assert mail["Auto-Submitted"] == "auto-generated"

    text: Any = mail.get_body(("plain",))
    html: Any = mail.get_body(("html",))
    plain_text, html_text = text.get_content(), html.get_content()
    for body in (plain_text, html_text):
        assert "ACME-2024-000001" in body
        assert "$1,234.56" in body
        assert "October 31, 2024" in body
    # the text part shows the name as written; the HTML part escapes it
    assert "Smith & <Sons>" in plain_text
    assert "Smith &amp; &lt;Sons&gt;" in html_text
    assert "<Sons>" not in html_text
    assert "no billing contact" not in plain_text

    [attachment] = list(mail.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "ACME-2024-000001.pdf"
    assert attachment.get_content() == PDF


def test_a_fallback_recipient_is_told_why() -> None:
    customer = _customer(_contact("boss@acme.example", primary=True))
    composed = compose_invoice_email(
        _invoice(),
        recipients=choose_recipients(customer),
        sender=SENDER,
        pdf=PDF,
        message_id="<x@billing.invalid>",
        sent_at=FINALIZED_AT,
    )
    text: Any = _reparse(composed).get_body(("plain",))
    assert "no billing contact is on file for Acme Corp" in text.get_content()


# --- SMTP error classes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (SMTPDataError(550, "5.7.1 message refused"), PermanentMailError),
        (SMTPDataError(451, "4.3.0 try again later"), TransientMailError),
        (
            SMTPRecipientsRefused([SMTPRecipientRefused(550, "no such user", "a@x.com")]),
            PermanentMailError,
        ),
        (
            SMTPRecipientsRefused(
                [
                    SMTPRecipientRefused(550, "no such user", "a@x.com"),
                    SMTPRecipientRefused(452, "mailbox full", "b@x.com"),
                ]
            ),
            TransientMailError,
        ),
        (SMTPAuthenticationError(535, "bad credentials"), TransientMailError),
        (SMTPServerDisconnected("gone"), TransientMailError),
        (ConnectionRefusedError(111, "refused"), TransientMailError),
    ],
)
def test_smtp_errors_are_transient_or_permanent(error: Exception, kind: type[Exception]) -> None:
    assert type(classify_smtp_error(error)) is kind


# --- the use case -----------------------------------------------------------------------------


def _ports(
    mailer: InMemoryMailer | None = None, *, pdf: bytes = PDF
) -> tuple[NotifyPorts, InMemoryMailer, InMemoryDeliveryLog]:
    mailer = mailer or InMemoryMailer()
    log = InMemoryDeliveryLog()
    ports = NotifyPorts(
        customers=InMemoryCustomerDirectory(ACME),
        pdfs=InMemoryInvoicePdfs({PDF_ID: pdf}),
        deliveries=log,
        mailer=mailer,
    )
    return ports, mailer, log


POLICY = MailPolicy(sender=SENDER)


async def test_an_invoice_is_emailed_once_however_often_its_event_arrives() -> None:
    ports, mailer, log = _ports()
    first = await notify_invoice_finalized(_event(), ports, POLICY)
    again = await notify_invoice_finalized(_event(), ports, POLICY)

    assert len(mailer.sent) == 1
    sent = mailer.sent[0]
    assert sent.sender == "billing@example.com"
    assert sent.recipients == ("ap@acme.example", "cfo@acme.example")
    message_id = message_id_for(MessageKind.INVOICE_FINALIZED, "inv-acme-2024-09")
    assert (first.result, again.result) == (Result.SENT, Result.ALREADY_SENT)
    notification = first.notification
    assert notification is not None
    assert notification.message_id == message_id
    assert notification.recipients == ["ap@acme.example", "cfo@acme.example"]
    assert notification.smtp_response == "250 OK: queued"
    assert again.notification == notification  # the logged notification, for republishing
    [record] = log.records.values()
    assert (record.status, record.attempts) == (DeliveryStatus.SENT, 1)
    assert record.delivered_to == ("ap@acme.example", "cfo@acme.example")
    assert record.fallback_recipient is False

    event = notification_sent(notification, _event())
    assert event.event_id == f"notification-sent:{message_id.strip('<>')}"
    assert event.correlation_id == "close-2024-09"


async def test_a_zero_invoice_is_skipped_unless_configured() -> None:
    ports, mailer, log = _ports()
    zero = _event(_invoice(total="0.00"))
    assert (await notify_invoice_finalized(zero, ports, POLICY)).result is Result.SKIPPED
    assert mailer.sent == []
    assert log.records == {}

    everything = MailPolicy(sender=SENDER, send_zero_amount_invoices=True)
    assert (await notify_invoice_finalized(zero, ports, everything)).result is Result.SENT
    assert "$0.00" in str(mailer.sent[0].message["Subject"])


async def test_a_refused_email_is_logged_failed_and_sent_when_replayed() -> None:
    mailer = InMemoryMailer(failures=[PermanentMailError("550 5.1.1 no such user")])
    ports, mailer, log = _ports(mailer)
    outcome = await notify_invoice_finalized(_event(), ports, POLICY)
    assert (outcome.result, outcome.reason) == (Result.FAILED, "550 5.1.1 no such user")
    [record] = log.records.values()
    assert (record.status, record.smtp_response) == (
        DeliveryStatus.FAILED,
        "550 5.1.1 no such user",
    )

    # the contact was fixed and the dead letter replayed
    assert (await notify_invoice_finalized(_event(), ports, POLICY)).result is Result.SENT
    [record] = log.records.values()
    assert (record.status, record.attempts) == (DeliveryStatus.SENT, 2)
    assert len(mailer.sent) == 1


async def test_a_transient_failure_schedules_a_retry_that_the_redriver_sends() -> None:
    mailer = InMemoryMailer(failures=[TransientMailError("421 try later")])
    ports, mailer, log = _ports(mailer)
    outcome = await notify_invoice_finalized(_event(), ports, POLICY)
    assert (outcome.result, outcome.server_unavailable) == (Result.RETRY_SCHEDULED, True)
    [record] = log.records.values()
    assert (record.status, record.attempts, record.retries) == (DeliveryStatus.RETRYING, 1, 1)
    assert record.smtp_response == "421 try later"
    assert record.next_attempt_at is not None
    # the first retry waits the base delay (30 s by default) after the failure
    assert (
        timedelta(seconds=29) < record.next_attempt_at - datetime.now(UTC) <= timedelta(seconds=30)
    )

    # a redelivery of the event leaves the scheduled retry alone...
    assert (await notify_invoice_finalized(_event(), ports, POLICY)).result is Result.SKIPPED
    assert mailer.sent == []
    # ...and the re-driver sends it
    again = await notify_invoice_finalized(_event(), ports, POLICY, Mode.REDRIVE)
    assert again.result is Result.SENT
    [record] = log.records.values()
    assert (record.status, record.attempts) == (DeliveryStatus.SENT, 2)
    assert len(mailer.sent) == 1


async def test_unknown_customer_missing_or_altered_pdf_send_nothing() -> None:
    ports, mailer, log = _ports()
    stranger = _invoice().model_copy(update={"customer_id": "nobody"})
    with pytest.raises(UnknownCustomerError, match="nobody"):
        await notify_invoice_finalized(_event(stranger), ports, POLICY)
    elsewhere = _invoice().model_copy(update={"pdf_file_id": "66f0c0ffee00000000000000"})
    with pytest.raises(InvoicePdfMissingError):
        await notify_invoice_finalized(_event(elsewhere), ports, POLICY)

    ports, mailer, log = _ports(pdf=PDF + b"tampered")
    with pytest.raises(InvoicePdfMismatchError):
        await notify_invoice_finalized(_event(), ports, POLICY)
    assert mailer.sent == []
    assert log.records == {}


@pytest.mark.parametrize(
    ("language", "nothing", "pay", "credit"),
    [
        ("en", "Nothing to pay", "Please pay", "Credit to your account"),
        ("de", "Nichts zu zahlen", "Bitte überweisen", "Gutschrift auf Ihr Kundenkonto"),
        ("fr", "Rien à payer", "Merci de régler", "Crédit en votre faveur"),
    ],
)
def test_a_negative_invoice_says_there_is_nothing_to_pay_never_a_negative_amount(
    language: str, nothing: str, pay: str, credit: str
) -> None:
    invoice = _invoice(total="-59.50").model_copy(update={"outstanding": Decimal(0)})
    email = render(MessageKind.INVOICE_FINALIZED, language, invoice_view(invoice, language))
    assert pay not in email.text
    assert pay not in email.html
    [due] = [line for line in email.text.splitlines() if nothing in line]
    [credited] = [line for line in email.text.splitlines() if credit in line]
    assert "59" in credited
    assert "-" not in credited.replace("\u2212", "-")  # the credit, as a positive amount
    assert "0.00" not in due  # "nothing to pay", not an amount
    assert nothing in email.html
    assert credit in email.html


@pytest.mark.parametrize(
    ("language", "applied", "amount", "due", "pay"),
    [
        ("en", "Credit applied", "-$40.00", "$83.45", "Please pay $83.45"),
        ("de", "Angerechnetes Guthaben", "-40,00\xa0$", "83,45\xa0$", "Bitte überweisen Sie 83,45"),
        ("fr", "Avoir imputé", "-40,00\xa0$US", "83,45\xa0$US", "Merci de régler 83,45"),
    ],
)
def test_credit_applied_at_finalization_is_a_row_of_the_email_as_on_the_pdf(
    language: str, applied: str, amount: str, due: str, pay: str
) -> None:
    # issue 18: the PDF shows "Credit applied" between the total and the amount due; so must
    # the email, or the customer reads a total and an amount due that do not match
    invoice = _invoice(total="123.45").model_copy(
        update={"credit_applied": Decimal("40.00"), "outstanding": Decimal("83.45")}
    )
    email = render(MessageKind.INVOICE_FINALIZED, language, invoice_view(invoice, language))
    [row] = [line for line in email.text.splitlines() if applied in line]
    assert row.rstrip().endswith(amount.replace("-", "\u2212")) or row.rstrip().endswith(amount)
    lines = email.text.splitlines()
    assert lines.index(row) == lines.index(next(x for x in lines if x.rstrip().endswith(due))) - 1
    assert pay in email.text
    html_row = re.search(rf"<th[^>]*>{applied}</th><td[^>]*>([^<]+)</td>", email.html)
    assert html_row is not None
    assert html_row.group(1).replace("\u2212", "-") == amount


@pytest.mark.parametrize("language", ["en", "de", "fr"])
def test_credit_settling_the_whole_invoice_leaves_nothing_to_pay(language: str) -> None:
    invoice = _invoice(total="50.00").model_copy(
        update={"credit_applied": Decimal("50.00"), "outstanding": Decimal(0)}
    )
    view = invoice_view(invoice, language)
    email = render(MessageKind.INVOICE_FINALIZED, language, view)
    pay = {"en": "Please pay", "de": "Bitte überweisen", "fr": "Merci de régler"}[language]
    assert pay not in email.text
    assert pay not in email.html
    settles = {"en": "settles this invoice", "de": "begleicht", "fr": "règle"}[language]
    assert settles in email.text
    assert settles in email.html


def test_without_credit_applied_the_email_has_no_such_row() -> None:
    email = render(MessageKind.INVOICE_FINALIZED, "en", invoice_view(_invoice(), "en"))
    assert "Credit applied" not in email.text
    assert "Credit applied" not in email.html


@pytest.mark.parametrize("language", ["en", "de", "fr", "pl"])
def test_the_email_names_the_period_as_the_invoice_pdf_does(language: str) -> None:
    # the PDF (invoicing) calls the same function: billing_schemas.periods.month_label
    assert period_label("2024-09", language) == month_label("2024-09", language)


@pytest.mark.parametrize(
    ("language", "subject", "attached"),
    [
        ("de", "Rechnungskorrektur KUNDE-CN-1 zu Rechnung KUNDE-1: 11,90\xa0€", "liegt bei"),
        ("fr", "Avoir KUNDE-CN-1 sur la facture KUNDE-1 : 11,90\xa0€", "L'avoir est joint"),
    ],
)
def test_the_credit_note_email_is_in_the_customers_language_like_its_pdf(
    language: str, subject: str, attached: str
) -> None:
    note = CreditNote(
        credit_note_id="cn-1",
        credit_note_number="KUNDE-CN-1",
        invoice_id="kunde:2024-09",
        invoice_number="KUNDE-1",
        customer_id="kunde",
        customer_name="Kunde GmbH",
        issue_date=date(2024, 10, 20),
        currency="EUR",
        total=Decimal("11.90"),
        reason="SLA",
        pdf_file_id=PDF_ID,
        pdf_sha256="0" * 64,
    )
    chosen = choose_language(MessageKind.CREDIT_NOTE_ISSUED, language)
    email = render(
        MessageKind.CREDIT_NOTE_ISSUED, chosen, credit_note_view(note, chosen, fallback=False)
    )

    assert chosen == language  # there was only English
    assert email.subject == subject
    assert attached in email.text
    assert "KUNDE-CN-1.pdf" in email.html
