"""Exactly-once delivery, retries, languages and the other kinds of email, with in-memory fakes."""

from __future__ import annotations

import email
import email.policy
import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import billing_notify
from billing_catalog.models import Address, Contact, ContactRole, Customer, PriceList
from billing_notify.adapters.memory import (
    InMemoryCustomerDirectory,
    InMemoryDeliveryLog,
    InMemoryInvoicePdfs,
    InMemoryMailer,
    InMemoryReconciliations,
)
from billing_notify.domain.bill_report import Verdict, bill_report_view
from billing_notify.domain.customer_emails import reminder_step
from billing_notify.domain.delivery import DeliveryStatus, RetryPolicy
from billing_notify.domain.messages import MessageKind, choose_language, message_id_for
from billing_notify.domain.recipients import parse_mailbox
from billing_notify.entrypoints.consumers import count
from billing_notify.ports import BeforeData, SendReport, TransientMailError, UncertainMailError
from billing_notify.service.deliver import MailPolicy, Mode, NotifyPorts, Result
from billing_notify.service.keep_verdicts import keep_verdicts
from billing_notify.service.notify_bill import notify_bill_processed
from billing_notify.service.notify_customer import (
    notify_credit_note_issued,
    notify_invoice_overdue,
    notify_payment_recorded,
)
from billing_notify.service.notify_invoice import notify_invoice_finalized
from billing_notify.service.retries import redrive_due
from billing_notify.settings import NotifySettings
from billing_runtime.observability import Metrics
from billing_schemas.events import (
    BillProcessed,
    BillSummary,
    CreditNote,
    CreditNoteIssued,
    FinalizedInvoice,
    InvoiceFinalized,
    InvoiceOverdue,
    OverdueInvoice,
    Payment,
    PaymentRecorded,
    PeriodReconciled,
    ReconcileVerdict,
    RejectedRow,
)

PDF = b"%PDF-1.7\n% stand-in\n%%EOF\n"
PDF_ID = "66f0c0ffee0000000000abcd"
SENDER = parse_mailbox("Billing <billing@example.com>")
AT = datetime(2024, 10, 1, 6, 30, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = AT

    def __call__(self) -> datetime:
        return self.now


def _customer(*contacts: Contact, language: str = "en") -> Customer:
    return Customer(
        id="acme",
        name="Acme GmbH",
        address=Address(lines=["Hauptstr. 1"], country="DE"),
        currency="EUR",
        language=language,
        invoicing_entity="cumulus",
        contacts=list(contacts),
        price_list=PriceList(id="std"),
    )


BILLING = [
    Contact(email="ap@acme.example", roles=[ContactRole.BILLING]),
    Contact(email="cfo@acme.example", roles=[ContactRole.BILLING]),
    Contact(email="ops@acme.example", roles=[ContactRole.TECH], primary=True),
]


def _invoice(invoice_id: str = "inv-1", number: str = "ACME-2024-000001") -> FinalizedInvoice:
    return FinalizedInvoice(
        invoice_id=invoice_id,
        invoice_number=number,
        customer_id="acme",
        customer_name="Acme GmbH",
        invoicing_entity_id="cumulus",
        period="2024-09",
        issue_date=date(2024, 10, 1),
        due_date=date(2024, 10, 31),
        currency="EUR",
        subtotal=Decimal("1000.00"),
        tax=Decimal("190.00"),
        total=Decimal("1190.00"),
        outstanding=Decimal("1190.00"),
        line_count=3,
        pdf_file_id=PDF_ID,
        pdf_sha256=hashlib.sha256(PDF).hexdigest(),
    )


def _finalized(invoice: FinalizedInvoice | None = None) -> InvoiceFinalized:
    invoice = invoice or _invoice()
    return InvoiceFinalized.create(
        invoice,
        source="billing-invoicing",
        correlation_id="close-2024-09",
        event_id=f"invoice-finalized:{invoice.invoice_id}",
        occurred_at=AT,
    )


def _ports(
    customer: Customer | None = None,
    mailer: InMemoryMailer | None = None,
) -> tuple[NotifyPorts, InMemoryMailer, InMemoryDeliveryLog, Clock]:
    clock = Clock()
    mailer = mailer or InMemoryMailer()
    log = InMemoryDeliveryLog(clock=clock)
    ports = NotifyPorts(
        customers=InMemoryCustomerDirectory(customer or _customer(*BILLING)),
        pdfs=InMemoryInvoicePdfs({PDF_ID: PDF}),
        deliveries=log,
        mailer=mailer,
        clock=clock,
    )
    return ports, mailer, log, clock


POLICY = MailPolicy(sender=SENDER)


def _text(message: EmailMessage) -> str:
    parsed: Any = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    body: Any = parsed.get_body(("plain",))
    return str(body.get_content())


# --- languages --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "chosen"),
    [("de", "de"), ("de-CH", "de"), ("fr_FR", "fr"), ("es", "en"), ("", "en"), ("EN", "en")],
)
def test_the_customers_language_is_used_when_templates_exist(requested: str, chosen: str) -> None:
    assert choose_language(MessageKind.INVOICE_FINALIZED, requested) == chosen


def test_kinds_without_a_translation_fall_back_to_english() -> None:
    assert choose_language(MessageKind.PAYMENT_RECORDED, "de") == "de"
    assert choose_language(MessageKind.INVOICE_OVERDUE, "de") == "en"


async def test_a_french_customer_gets_a_french_receipt() -> None:
    ports, mailer, _, _ = _ports(_customer(*BILLING, language="fr"))
    await notify_payment_recorded(_payment(outstanding_after="0.00"), ports, POLICY)
    [sent] = mailer.sent
    # French conventions: 1\u202f000,00\u00a0€ (narrow no-break space between thousands)
    assert sent.message["Subject"] == (
        "Paiement reçu pour la facture ACME-2024-000001 : 1\u202f000,00\u00a0€"
    )
    assert "La facture est intégralement réglée." in _text(sent.message)


async def test_a_german_customer_gets_a_german_invoice_email() -> None:
    ports, mailer, _, _ = _ports(_customer(*BILLING, language="de"))
    await notify_invoice_finalized(_finalized(), ports, POLICY)
    [sent] = mailer.sent
    # German conventions: 1.190,00 € (no-break space before the sign) and "31. Oktober 2024"
    assert sent.message["Subject"] == (
        "Rechnung ACME-2024-000001 für September 2024: 1.190,00\u00a0€"
    )
    assert sent.message["Content-Language"] == "de"
    text = _text(sent.message)
    assert "Bitte überweisen Sie 1.190,00\u00a0€ bis zum 31. Oktober 2024" in text


async def test_a_spanish_customer_gets_the_english_email() -> None:
    ports, mailer, _, _ = _ports(_customer(*BILLING, language="es"))
    await notify_invoice_finalized(_finalized(), ports, POLICY)
    [sent] = mailer.sent
    assert sent.message["Subject"] == "Invoice ACME-2024-000001 for September 2024: €1,190.00"
    assert sent.message["Content-Language"] == "en"


# --- recipients --------------------------------------------------------------------------------


async def test_without_billing_contact_the_primary_gets_it_and_the_log_says_so() -> None:
    customer = _customer(
        Contact(email="dev@acme.example", roles=[ContactRole.TECH]),
        Contact(email="boss@acme.example", roles=[ContactRole.DPO], primary=True),
    )
    ports, mailer, log, _ = _ports(customer)
    outcome = await notify_invoice_finalized(_finalized(), ports, POLICY)
    assert outcome.fallback_recipient is True
    assert mailer.sent[0].recipients == ("boss@acme.example",)
    [record] = log.records.values()
    assert record.fallback_recipient is True


async def test_a_role_change_applies_from_the_next_email_on() -> None:
    ports, mailer, _, _ = _ports()
    await notify_invoice_finalized(_finalized(), ports, POLICY)
    directory = ports.customers
    assert isinstance(directory, InMemoryCustomerDirectory)
    directory.customers["acme"] = _customer(
        Contact(email="new-ap@acme.example", roles=[ContactRole.BILLING])
    )
    await notify_invoice_finalized(_finalized(), ports, POLICY)  # redelivered: not again
    await notify_invoice_finalized(_finalized(_invoice("inv-2", "ACME-2024-000002")), ports, POLICY)
    assert [m.recipients for m in mailer.sent] == [
        ("ap@acme.example", "cfo@acme.example"),
        ("new-ap@acme.example",),
    ]


# --- exactly once in effect ---------------------------------------------------------------------


class CrashingMailer:
    """Dies (as the process would) before or after announcing the message data."""

    def __init__(self, *, after_data_announced: bool) -> None:
        self.after = after_data_announced

    async def send(
        self,
        message: EmailMessage,
        *,
        sender: str,
        recipients: Any,
        before_data: BeforeData,
    ) -> SendReport:
        del message, sender, recipients
        if self.after:
            await before_data()
        msg = "process killed"
        raise KeyboardInterrupt(msg)


async def test_a_crash_before_the_message_data_is_resent_once() -> None:
    ports, mailer, log, _ = _ports()
    crashing = NotifyPorts(
        **{**ports.__dict__, "mailer": CrashingMailer(after_data_announced=False)}
    )
    with pytest.raises(KeyboardInterrupt):
        await notify_invoice_finalized(_finalized(), crashing, POLICY)
    [record] = log.records.values()
    assert record.status is DeliveryStatus.PENDING  # the server has nothing: safe to send

    outcome = await notify_invoice_finalized(_finalized(), ports, POLICY)  # the redelivery
    assert outcome.result is Result.SENT
    assert len(mailer.sent) == 1
    assert log.records[record.message_id].attempts == 2


async def test_a_crash_after_the_message_data_is_never_resent() -> None:
    ports, mailer, log, _ = _ports()
    crashing = NotifyPorts(
        **{**ports.__dict__, "mailer": CrashingMailer(after_data_announced=True)}
    )
    with pytest.raises(KeyboardInterrupt):
        await notify_invoice_finalized(_finalized(), crashing, POLICY)
    [record] = log.records.values()
    assert record.status is DeliveryStatus.SENDING

    outcome = await notify_invoice_finalized(_finalized(), ports, POLICY)  # the redelivery
    assert outcome.result is Result.UNCERTAIN
    assert mailer.sent == []
    assert log.records[record.message_id].status is DeliveryStatus.UNCERTAIN
    # and it stays that way, however often the event comes back
    assert (await notify_invoice_finalized(_finalized(), ports, POLICY)).result is Result.SKIPPED
    assert mailer.sent == []


async def test_no_reply_after_the_data_is_uncertain_and_not_retried() -> None:
    mailer = InMemoryMailer(failures=[UncertainMailError("no reply after the message data")])
    ports, mailer, log, _ = _ports(mailer=mailer)
    outcome = await notify_invoice_finalized(_finalized(), ports, POLICY)
    assert outcome.result is Result.UNCERTAIN
    [record] = log.records.values()
    assert record.status is DeliveryStatus.UNCERTAIN
    assert "no reply after the message data" in (record.smtp_response or "")


async def test_a_recipient_refused_for_now_is_retried_alone() -> None:
    mailer = InMemoryMailer(refusals={"cfo@acme.example": "452 4.2.2 mailbox full"})
    ports, mailer, log, clock = _ports(mailer=mailer)
    outcome = await notify_invoice_finalized(_finalized(), ports, POLICY)
    assert outcome.result is Result.RETRY_SCHEDULED
    assert outcome.server_unavailable is False  # one mailbox, not the server: the batch goes on
    [record] = log.records.values()
    assert record.delivered_to == ("ap@acme.example",)
    assert record.status is DeliveryStatus.RETRYING

    mailer.refusals.clear()
    clock.now += timedelta(seconds=30)  # the first retry is due 30 s later
    redriven = await redrive_due(ports, POLICY, lease=timedelta(minutes=5))
    assert redriven is not None
    assert redriven.outcome.result is Result.SENT
    assert [m.recipients for m in mailer.sent] == [("ap@acme.example",), ("cfo@acme.example",)]
    record = log.records[record.message_id]
    assert record.delivered_to == ("ap@acme.example", "cfo@acme.example")
    notification = redriven.outcome.notification
    assert notification is not None
    assert notification.recipients == ["ap@acme.example", "cfo@acme.example"]


async def test_a_recipient_refused_for_good_does_not_stop_the_others() -> None:
    mailer = InMemoryMailer(refusals={"cfo@acme.example": "550 5.1.1 no such user"})
    ports, mailer, log, _ = _ports(mailer=mailer)
    outcome = await notify_invoice_finalized(_finalized(), ports, POLICY)
    assert outcome.result is Result.SENT
    [record] = log.records.values()
    assert record.delivered_to == ("ap@acme.example",)
    assert "cfo@acme.example: 550 5.1.1 no such user" in (record.smtp_response or "")


async def test_every_recipient_refused_for_good_fails_the_email() -> None:
    mailer = InMemoryMailer(
        refusals=dict.fromkeys(("ap@acme.example", "cfo@acme.example"), "550 5.1.1 no such user")
    )
    ports, _, log, _ = _ports(mailer=mailer)
    outcome = await notify_invoice_finalized(_finalized(), ports, POLICY)
    assert outcome.result is Result.FAILED
    assert next(iter(log.records.values())).status is DeliveryStatus.FAILED


# --- retries ------------------------------------------------------------------------------------


def test_retry_delays_double_up_to_the_cap() -> None:
    policy = RetryPolicy(base=timedelta(seconds=30), maximum=timedelta(minutes=5))
    # 30, 60, 120, 240 s, then capped at 300 s
    assert [policy.delay(n).total_seconds() for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]
    with pytest.raises(ValueError, match="start at 1"):
        policy.delay(0)


async def test_retries_are_due_only_at_their_time_and_end_failed() -> None:
    failures: list[Exception] = [TransientMailError(f"421 busy ({n})") for n in range(3)]
    ports, mailer, log, clock = _ports(mailer=InMemoryMailer(failures=failures))
    policy = MailPolicy(
        sender=SENDER,
        retry=RetryPolicy(base=timedelta(seconds=10), maximum=timedelta(hours=1), max_retries=2),
    )
    lease = timedelta(minutes=5)
    assert (await notify_invoice_finalized(_finalized(), ports, policy)).result is (
        Result.RETRY_SCHEDULED
    )
    assert await redrive_due(ports, policy, lease) is None  # not due yet
    clock.now += timedelta(seconds=10)  # retry 1 is due after 10 s
    first = await redrive_due(ports, policy, lease)
    assert first is not None
    assert first.outcome.result is Result.RETRY_SCHEDULED
    clock.now += timedelta(seconds=19)  # retry 2 waits 20 s: not yet
    assert await redrive_due(ports, policy, lease) is None
    clock.now += timedelta(seconds=1)
    last = await redrive_due(ports, policy, lease)
    assert last is not None
    assert last.outcome.result is Result.FAILED
    assert "gave up after 2 retries: 421 busy (2)" in last.outcome.reason
    [record] = log.records.values()
    assert (record.status, record.attempts, record.retries) == (DeliveryStatus.FAILED, 3, 2)
    assert record.source_event == _finalized().model_dump_json()  # what is dead-lettered
    assert mailer.sent == []


async def test_a_deferred_email_is_scheduled_without_an_attempt() -> None:
    ports, mailer, log, clock = _ports()
    outcome = await notify_invoice_finalized(_finalized(), ports, POLICY, Mode.DEFER)
    assert outcome.result is Result.RETRY_SCHEDULED
    [record] = log.records.values()
    assert (record.status, record.attempts, record.retries) == (DeliveryStatus.RETRYING, 0, 1)
    assert record.next_attempt_at == AT + timedelta(seconds=30)
    assert mailer.sent == []
    clock.now = AT + timedelta(seconds=30)
    redriven = await redrive_due(ports, POLICY, timedelta(minutes=5))
    assert redriven is not None
    assert redriven.outcome.result is Result.SENT
    assert len(mailer.sent) == 1


def test_settings_read_the_schedule_and_operators_from_text() -> None:
    settings = NotifySettings(
        overdue_reminder_days="30, 7,14",
        operators="ops@example.com, Finance <fin@example.com>",
    )
    assert settings.overdue_reminder_days == [7, 14, 30]
    assert [m.address for m in settings.operator_mailboxes] == [
        "ops@example.com",
        "fin@example.com",
    ]
    with pytest.raises(ValueError, match="operators"):
        NotifySettings(operators="ops@example.com\nBcc: x@evil.example")
    with pytest.raises(ValueError, match="overdue_reminder_days"):
        NotifySettings(overdue_reminder_days="0,7")


# --- payment, credit note, overdue, bill report --------------------------------------------------


def _payment(outstanding_after: str = "190.00") -> PaymentRecorded:
    return PaymentRecorded.create(
        Payment(
            payment_id="pay-1",
            invoice_id="inv-1",
            invoice_number="ACME-2024-000001",
            customer_id="acme",
            amount=Decimal("1000.00"),
            currency="EUR",
            method="SEPA transfer",
            reference="RF18 5390 0754 7034",
            paid_on=date(2024, 10, 20),
            outstanding_after=Decimal(outstanding_after),
        ),
        source="billing-invoicing",
        correlation_id="pay-1",
        occurred_at=AT,
    )


async def test_a_payment_receipt_goes_to_the_billing_contacts_once() -> None:
    ports, mailer, log, _ = _ports()
    first = await notify_payment_recorded(_payment(), ports, POLICY)
    again = await notify_payment_recorded(_payment(), ports, POLICY)
    assert (first.result, again.result) == (Result.SENT, Result.ALREADY_SENT)
    [sent] = mailer.sent
    assert sent.recipients == ("ap@acme.example", "cfo@acme.example")
    assert sent.message["Subject"] == "Payment received for invoice ACME-2024-000001: €1,000.00"
    assert sent.message["Message-ID"] == message_id_for(MessageKind.PAYMENT_RECORDED, "pay-1")
    text = _text(sent.message)
    # 1190.00 owed - 1000.00 paid = 190.00 still owed
    assert "€190.00 of invoice ACME-2024-000001 remains to be paid" in text
    assert "RF18 5390 0754 7034" in text
    [record] = log.records.values()
    assert (record.kind, record.invoice_id) == ("payment-recorded", "inv-1")


async def test_a_payment_that_settles_the_invoice_says_so() -> None:
    ports, mailer, _, _ = _ports()
    await notify_payment_recorded(_payment(outstanding_after="0.00"), ports, POLICY)
    assert "The invoice is paid in full." in _text(mailer.sent[0].message)


async def test_a_credit_note_is_sent_with_its_pdf() -> None:
    ports, mailer, _, _ = _ports()
    note = CreditNote(
        credit_note_id="cn-1",
        credit_note_number="ACME-CN-2024-000001",
        invoice_id="inv-1",
        invoice_number="ACME-2024-000001",
        customer_id="acme",
        customer_name="Acme GmbH",
        issue_date=date(2024, 10, 15),
        currency="EUR",
        total=Decimal("119.005"),
        reason="Duplicate storage charge",
        pdf_file_id=PDF_ID,
        pdf_sha256=hashlib.sha256(PDF).hexdigest(),
    )
    event = CreditNoteIssued.create(note, source="billing-invoicing", correlation_id="cn-1")
    assert (await notify_credit_note_issued(event, ports, POLICY)).result is Result.SENT
    [sent] = mailer.sent
    # 119.005 rounds half-up to 119.01
    assert sent.message["Subject"] == (
        "Credit note ACME-CN-2024-000001 for invoice ACME-2024-000001: €119.01"
    )
    [attachment] = list(sent.message.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_filename() == "ACME-CN-2024-000001.pdf"
    assert attachment.get_content() == PDF


@pytest.mark.parametrize(
    ("days", "step"), [(1, None), (6, None), (7, 7), (13, 7), (14, 14), (29, 14), (45, 30)]
)
def test_the_reminder_due_is_the_last_step_reached(days: int, step: int | None) -> None:
    assert reminder_step(days, (7, 14, 30)) == step


def _overdue(days: int, outstanding: str = "1190.00") -> InvoiceOverdue:
    return InvoiceOverdue.create(
        OverdueInvoice(
            invoice_id="inv-1",
            invoice_number="ACME-2024-000001",
            customer_id="acme",
            customer_name="Acme GmbH",
            currency="EUR",
            total=Decimal("1190.00"),
            outstanding=Decimal(outstanding),
            due_date=date(2024, 10, 31),
            as_of=date(2024, 10, 31) + timedelta(days=days),
            days_overdue=days,
        ),
        source="billing-invoicing",
        correlation_id="overdue-check",
    )


async def test_daily_overdue_events_send_one_reminder_per_schedule_step() -> None:
    ports, mailer, _, _ = _ports()
    results = [
        (await notify_invoice_overdue(_overdue(d), ports, POLICY)).result for d in range(1, 16)
    ]
    # days 1-6: nothing; day 7: the 7-day reminder; 8-13: already sent; day 14: the 14-day one
    assert results.count(Result.SENT) == 2
    assert results.index(Result.SENT) == 6
    assert [m.message["Subject"] for m in mailer.sent] == [
        "Reminder: invoice ACME-2024-000001 is 7 days overdue (€1,190.00 due)",
        "Reminder: invoice ACME-2024-000001 is 14 days overdue (€1,190.00 due)",
    ]
    assert (await notify_invoice_overdue(_overdue(30, "0.00"), ports, POLICY)).result is (
        Result.SKIPPED
    )


def _bill(rejected: int, first_rejected: list[RejectedRow] | None = None) -> BillProcessed:
    return BillProcessed.create(
        BillSummary(
            bill_id="bill-7",
            file_name="focus-2024-09.csv",
            checksum_sha256="0" * 64,
            format="focus",
            status="partially_rejected",
            billing_periods=["2024-09"],
            rows_read=1000 + rejected,
            rows_accepted=1000,
            rows_rejected=rejected,
            billed_cost_totals={"USD": Decimal("12345.6789"), "EUR": Decimal("10.5")},
            first_rejected_rows=first_rejected or [],
        ),
        source="billing-ingest",
        correlation_id="bill-7",
        occurred_at=AT,
    )


def _rejected_rows(n: int) -> list[RejectedRow]:
    return [
        RejectedRow(
            bill_id="bill-7",
            file="focus-2024-09.csv",
            row=row,
            column="BilledCost",
            reason=f"not a decimal: 'x{row}'",
        )
        for row in range(2, 2 + n)
    ]


async def test_operators_get_the_bill_report_with_the_first_rejected_rows() -> None:
    ports, mailer, log, _ = _ports()
    policy = MailPolicy(
        sender=SENDER,
        operators=(parse_mailbox("Ops <ops@cumulus.example>"),),
        rejected_rows_listed=3,
    )
    bill = _bill(5, first_rejected=_rejected_rows(5))
    assert (await notify_bill_processed(bill, ports, policy)).result is Result.SENT
    [sent] = mailer.sent
    assert sent.recipients == ("ops@cumulus.example",)
    assert sent.message["Subject"] == (
        "Bill focus-2024-09.csv partially_rejected: 1,000 rows accepted, 5 rejected"
    )
    text = _text(sent.message)
    assert "EUR  10.5" in text
    assert "USD  12,345.6789" in text
    assert "focus-2024-09.csv row 4, column BilledCost: not a decimal: 'x4'" in text
    assert "row 5," not in text  # only the first 3 rows (2, 3, 4) are listed
    assert "... and 2 more: billing bills show bill-7" in text  # 5 rejected - 3 listed
    assert "2024-09: not reconciled yet (billing reconcile --period 2024-09)" in text
    [record] = log.records.values()
    assert (record.kind, record.customer_id) == ("bill-processed", None)


async def test_without_operators_no_bill_report_is_sent() -> None:
    ports, mailer, log, _ = _ports()
    assert (await notify_bill_processed(_bill(0), ports, POLICY)).result is Result.SKIPPED
    assert mailer.sent == []
    assert log.records == {}


async def test_the_bill_report_says_whether_the_period_reconciles() -> None:
    ports, mailer, _, _ = _ports()
    # the verdict as it comes: published by billing reconcile, kept by notify's consumer
    verdict = ReconcileVerdict(
        period="2024-09",
        reconciles=False,
        differences=5,
        unexplained=3,
        checked_at=AT + timedelta(1),
    )
    reconciled = PeriodReconciled.create(verdict, source="billing-reconcile", correlation_id="r")
    ports = replace(ports, reconciliations=InMemoryReconciliations())
    assert await keep_verdicts([reconciled], ports.reconciliations) == 1
    policy = MailPolicy(sender=SENDER, operators=(parse_mailbox("ops@cumulus.example"),))
    assert (await notify_bill_processed(_bill(0), ports, policy)).result is Result.SENT
    [sent] = mailer.sent
    line = "2024-09: does NOT reconcile: 3 unexplained differences (checked 2024-10-02 06:30 UTC)"
    assert line in _text(sent.message)
    html = sent.message.get_body(("html",))
    assert html is not None
    assert line in html.get_content()


def test_a_verdict_older_than_the_bill_is_flagged_as_such() -> None:
    earlier = Verdict("2024-09", reconciles=True, unexplained=0, checked_at=AT - timedelta(1))
    view = bill_report_view(
        _bill(0).data, [], limit=0, verdicts={"2024-09": earlier}, processed_at=AT
    )
    assert view.reconciliation == [
        "2024-09: reconciles: no unexplained difference (checked 2024-09-30 06:30 UTC, "
        "before this bill: run billing reconcile --period 2024-09 again)"
    ]


def test_the_report_view_orders_currencies_and_counts_unlisted_rows() -> None:
    view = bill_report_view(_bill(5).data, _rejected_rows(5), limit=0)
    assert view.totals == [("EUR", "10.5"), ("USD", "12,345.6789")]
    assert (view.rejected, view.rejected_not_listed) == ([], 5)


# --- templates and metrics ----------------------------------------------------------------------


def test_every_language_has_the_three_templates_of_each_kind_it_translates() -> None:
    templates = Path(billing_notify.__file__).parent / "templates"
    languages = {p.name for p in templates.iterdir() if p.is_dir()}
    assert {"en", "de", "fr"} <= languages
    for language in languages:
        kinds = {p.name.split(".")[0] for p in (templates / language).glob("*.j2")}
        for kind in kinds:
            assert kind in {k.value for k in MessageKind}, f"{language}/{kind}: unknown kind"
            for part in ("subject", "txt", "html"):
                assert (templates / language / f"{kind}.{part}.j2").is_file(), (language, kind)
    english = {p.name.split(".")[0] for p in (templates / "en").glob("*.j2")}
    assert english == {k.value for k in MessageKind}  # the fallback covers every kind


async def test_a_fallback_recipient_is_counted_in_the_metrics() -> None:
    registry = CollectorRegistry()
    runtime: Any = SimpleNamespace(metrics=Metrics.create(registry))
    customer = _customer(Contact(email="boss@acme.example", primary=True))
    ports, _, _, _ = _ports(customer)
    count(runtime, await notify_invoice_finalized(_finalized(), ports, POLICY))

    def outcome(name: str) -> float | None:
        labels = {"service": "notify", "outcome": name}
        return registry.get_sample_value("billing_outcomes_total", labels)

    assert (outcome("email_sent"), outcome("email_fallback_recipient")) == (1.0, 1.0)
