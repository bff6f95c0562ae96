"""Notify in-process against the real broker, FerretDB and a real SMTP server: the emails
other than the invoice, and a batch meeting an SMTP server that is down."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from notify_test_support import (
    consumed,
    notify_settings,
    plain_text,
    publish,
    running,
    sink_mails,
)
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Address, Contact, ContactRole, Customer, PriceList
from billing_catalog.store import CUSTOMERS
from billing_devtools.mail_sink import MaildirSink, serve
from billing_devtools.testing import TopicReader, eventually
from billing_notify.adapters.delivery_log import DELIVERIES
from billing_notify.adapters.memory import InMemoryInvoicePdfs
from billing_runtime.kafka import ensure_topics
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
    RejectedRow,
)
from billing_schemas.topics import Topic, dead_letter_name, topic_name

if TYPE_CHECKING:
    from conftest import Infra, SmtpSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

AT = datetime(2024, 10, 1, 6, 30, tzinfo=UTC)
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 50 + b"\n%%EOF\n"
CUSTOMER = Customer(
    id="kunde",
    name="Kunde AG",
    address=Address(lines=["Bahnhofstr. 1", "Zürich"], country="CH"),
    currency="CHF",
    language="de-CH",
    invoicing_entity="cumulus",
    price_list=PriceList(id="std"),
    contacts=[
        Contact(email="buchhaltung@kunde.example", roles=[ContactRole.BILLING]),
        Contact(email="it@kunde.example", roles=[ContactRole.TECH], primary=True),
    ],
)


async def test_receipts_credit_notes_reminders_and_bill_reports_are_emailed_once(
    infra: Infra,
    namespace: str,
    mongo_db: AsyncDatabase[dict[str, Any]],
    smtp_sink: SmtpSink,
) -> None:
    await mongo_db[CUSTOMERS].insert_one({"_id": CUSTOMER.id, **CUSTOMER.model_dump(mode="json")})
    pdf_id = "cn-1.pdf"
    pdfs = InMemoryInvoicePdfs({pdf_id: PDF})  # invoicing's documents (the fake of its API)
    settings = notify_settings(infra, namespace, smtp_sink.port, operators=["ops@cumulus.example"])

    payment = PaymentRecorded.create(
        Payment(
            payment_id="pay-9",
            invoice_id="inv-9",
            invoice_number="KUNDE-2024-000009",
            customer_id="kunde",
            amount=Decimal("500.00"),
            currency="CHF",
            method="bank transfer",
            reference="KUNDE-2024-000009",
            paid_on=date(2024, 10, 20),
            outstanding_after=Decimal("0.00"),
        ),
        source="billing-invoicing",
        correlation_id="pay-9",
        occurred_at=AT,
    )
    note = CreditNoteIssued.create(
        CreditNote(
            credit_note_id="cn-1",
            credit_note_number="KUNDE-CN-1",
            invoice_id="inv-9",
            invoice_number="KUNDE-2024-000009",
            customer_id="kunde",
            customer_name="Kunde AG",
            issue_date=date(2024, 10, 21),
            currency="CHF",
            total=Decimal("20.00"),
            reason="goodwill",
            pdf_file_id=pdf_id,
            pdf_sha256=hashlib.sha256(PDF).hexdigest(),
        ),
        source="billing-invoicing",
        correlation_id="cn-1",
        occurred_at=AT,
    )

    def overdue(days: int) -> InvoiceOverdue:
        return InvoiceOverdue.create(
            OverdueInvoice(
                invoice_id="inv-8",
                invoice_number="KUNDE-2024-000008",
                customer_id="kunde",
                customer_name="Kunde AG",
                currency="CHF",
                total=Decimal("100.00"),
                outstanding=Decimal("100.00"),
                due_date=date(2024, 9, 30),
                as_of=date(2024, 10, 1),
                days_overdue=days,
            ),
            source="billing-invoicing",
            correlation_id="overdue",
            occurred_at=AT,
        )

    bill = BillProcessed.create(
        BillSummary(
            bill_id="bill-9",
            file_name="aws.csv",
            checksum_sha256="0" * 64,
            format="aws-cur",
            status="partially_rejected",
            billing_periods=["2024-09"],
            rows_read=12,
            rows_accepted=10,
            rows_rejected=2,
            billed_cost_totals={"USD": Decimal("42.125")},
            # the first rejected rows travel on the event, in row order (ingest sorts them)
            first_rejected_rows=[
                RejectedRow(
                    bill_id="bill-9", file="aws.csv", row=row, column="SubAccountId", reason=why
                )
                for row, why in [(3, "negative usage"), (12, "no customer owns account 999")]
            ],
        ),
        source="billing-ingest",
        correlation_id="bill-9",
        occurred_at=AT,
    )

    async with running(settings, pdfs):
        # each twice: as a redelivery or a replay would bring it; the reminder daily
        await publish(settings, Topic.PAYMENT_RECORDED, "kunde", payment, payment)
        await publish(settings, Topic.CREDIT_NOTE_ISSUED, "kunde", note, note)
        await publish(settings, Topic.INVOICE_OVERDUE, "kunde", overdue(6), overdue(7), overdue(8))
        await publish(settings, Topic.BILL_PROCESSED, "bill-9", bill, bill)

        async def four_mails() -> bool:
            return len(smtp_sink.messages()) >= 4

        await eventually(four_mails, "four emails")
        await consumed(settings, Topic.PAYMENT_RECORDED, "-payments")
        await consumed(settings, Topic.CREDIT_NOTE_ISSUED, "-credit-notes")
        await consumed(settings, Topic.INVOICE_OVERDUE, "-reminders")
        await consumed(settings, Topic.BILL_PROCESSED, "-bill-reports")

    mails = {str(m["Subject"]).split(" ")[0]: m for m in sink_mails(smtp_sink.directory)}
    assert len(smtp_sink.messages()) == 4  # nothing twice
    # the customer writes de-CH: the receipt and the credit note are in German, the reminder has
    # English templates only
    assert set(mails) == {"Zahlungseingang", "Rechnungskorrektur", "Reminder:", "Bill"}
    for kind in ("Zahlungseingang", "Rechnungskorrektur", "Reminder:"):
        assert [a.addr_spec for a in mails[kind]["To"].addresses] == ["buchhaltung@kunde.example"]
    assert "Die Rechnung ist vollständig bezahlt." in plain_text(mails["Zahlungseingang"])
    # reminders have English templates only: English text and English number format
    assert mails["Reminder:"]["Subject"] == (
        "Reminder: invoice KUNDE-2024-000008 is 7 days overdue (CHF100.00 due)"
    )
    [attachment] = list(mails["Rechnungskorrektur"].iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_content() == PDF
    report = plain_text(mails["Bill"])
    assert [a.addr_spec for a in mails["Bill"]["To"].addresses] == ["ops@cumulus.example"]
    assert "USD  42.125" in report
    # listed in the event's order (row order)
    assert report.index("row 3, column SubAccountId: negative usage") < report.index(
        "row 12, column SubAccountId: no customer owns account 999"
    )
    kinds = sorted([doc["kind"] async for doc in mongo_db[DELIVERIES].find({"status": "sent"})])
    assert kinds == ["bill-processed", "credit-note-issued", "invoice-overdue", "payment-recorded"]


class Switchable:
    """An SMTP server that answers DATA with 421 while ``down``, and stores mail after."""

    def __init__(self, directory: Path) -> None:
        self.sink = MaildirSink(directory)
        self.down = True
        self.refused = 0

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.down:
            self.refused += 1
            return "421 4.3.2 System not accepting network messages"
        return await self.sink.handle_DATA(server, session, envelope)


def _invoice(n: int, pdf_id: str) -> InvoiceFinalized:
    invoice = FinalizedInvoice(
        invoice_id=f"inv-{n}",
        invoice_number=f"KUNDE-2024-00000{n}",
        customer_id="kunde",
        customer_name="Kunde AG",
        invoicing_entity_id="cumulus",
        period="2024-09",
        issue_date=date(2024, 10, 1),
        due_date=date(2024, 10, 31),
        currency="CHF",
        subtotal=Decimal("100.00"),
        tax=Decimal("8.10"),
        total=Decimal("108.10"),
        outstanding=Decimal("108.10"),
        line_count=1,
        pdf_file_id=pdf_id,
        pdf_sha256=hashlib.sha256(PDF).hexdigest(),
    )
    return InvoiceFinalized.create(
        invoice, source="billing-invoicing", correlation_id="close", occurred_at=AT
    )


async def test_a_server_that_is_down_is_tried_once_per_batch_then_every_email_goes_out(
    infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    await mongo_db[CUSTOMERS].insert_one({"_id": CUSTOMER.id, **CUSTOMER.model_dump(mode="json")})
    pdf_id = "x.pdf"
    pdfs = InMemoryInvoicePdfs({pdf_id: PDF})  # invoicing's documents (the fake of its API)
    handler = Switchable(tmp_path / "mail")
    server = await serve(handler, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        # a long backoff: only the consumer's own attempts can reach the server while it is down
        settings = notify_settings(infra, namespace, port, retry_backoff_seconds=3600)
        invoices = [_invoice(n, pdf_id) for n in (1, 2, 3)]
        # published before the consumer starts: one partition, one batch
        await ensure_topics(
            settings.kafka_bootstrap_servers,
            [topic_name(Topic.INVOICE_FINALIZED, settings.topic_namespace)],
        )
        await publish(settings, Topic.INVOICE_FINALIZED, "kunde", *invoices)
        async with running(settings, pdfs):
            await consumed(settings, Topic.INVOICE_FINALIZED)
            docs = [doc async for doc in mongo_db[DELIVERIES].find({})]
            assert sorted(d["status"] for d in docs) == ["retrying"] * 3
            assert handler.refused == 1  # the first email tried; the other two not at all
            assert sorted(d["attempts"] for d in docs) == [0, 0, 1]

            handler.down = False
            await mongo_db[DELIVERIES].update_many({}, {"$set": {"next_attempt_at": AT}})

            async def all_sent() -> bool:
                return len(handler.sink.received) == 3

            await eventually(all_sent, "the three invoices once the server is back")
            await asyncio.sleep(0.5)  # a few more polls: nothing sent twice
        assert len(handler.sink.received) == 3
        subjects = sorted(str(m["Subject"]) for m in sink_mails(tmp_path / "mail"))
        # de-CH has no templates of its own: German; CHF in Swiss-German notation
        assert subjects[0].startswith("Rechnung KUNDE-2024-000001 für September 2024: ")
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


async def test_after_the_last_retry_the_email_fails_and_its_event_is_dead_lettered(
    infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    await mongo_db[CUSTOMERS].insert_one({"_id": CUSTOMER.id, **CUSTOMER.model_dump(mode="json")})
    pdf_id = "x.pdf"
    pdfs = InMemoryInvoicePdfs({pdf_id: PDF})  # invoicing's documents (the fake of its API)
    handler = Switchable(tmp_path / "mail")  # down for good
    server = await serve(handler, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        settings = notify_settings(infra, namespace, port, retry_max_retries=2)
        dlq = dead_letter_name(Topic.INVOICE_FINALIZED, settings.topic_namespace)
        event = _invoice(1, pdf_id)
        async with running(settings, pdfs), TopicReader(infra.kafka_bootstrap_servers, dlq) as dead:
            await publish(settings, Topic.INVOICE_FINALIZED, "kunde", event)
            [letter] = await dead.wait_for(1)
            await asyncio.sleep(1.0)  # ten more polls: no further attempt
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)

    # the consumer's attempt and two retries (after 0.2 s and 0.4 s), then no more
    assert handler.refused == 3
    assert handler.sink.received == []
    headers = {key: value.decode() for key, value in letter.headers}
    assert headers["x-original-topic"] == topic_name(
        Topic.INVOICE_FINALIZED, settings.topic_namespace
    )
    assert headers["x-failed-by"] == "notify"
    assert "gave up after 2 retries" in headers["x-error"]
    assert "421" in headers["x-error"]
    assert letter.key == b"kunde"
    assert InvoiceFinalized.model_validate_json(letter.value) == event  # replayable as it was
    [delivery] = [doc async for doc in mongo_db[DELIVERIES].find({})]
    assert headers["x-retry-of"] == delivery["_id"]
    assert (delivery["status"], delivery["attempts"], delivery["retries"]) == ("failed", 3, 2)
