"""Notify's flows, written once and run twice (the ``flow`` fixture): in memory, with the fake
mailer, and on the real broker, mailing the SMTP sink. A finalized invoice is emailed once, with
its PDF, to the customer's Billing contacts and announced (``NotificationSent``), however often
the event arrives; a processed bill is reported to the operators with its first rejected rows."""

from __future__ import annotations

import email
import email.policy
import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import pytest
from notify_test_support import notify_settings, plain_text, sink_mails
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Address, Contact, ContactRole, Customer, PriceList
from billing_catalog.store import CUSTOMERS
from billing_devtools.testing import eventually
from billing_notify.adapters.memory import InMemoryInvoicePdfs, InMemoryMailer
from billing_notify.app import build
from billing_notify.domain.messages import MessageKind, message_id_for
from billing_schemas.channels import BILL_PROCESSED, INVOICE_FINALIZED, NOTIFICATION_SENT
from billing_schemas.events import (
    BillProcessed,
    BillSummary,
    FinalizedInvoice,
    InvoiceFinalized,
    NotificationSent,
    RejectedRow,
)

if TYPE_CHECKING:
    from conftest import FlowBroker, Infra, SmtpSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

NUMBER = "ACME-2024-000001"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 200 + b"\n%%EOF\n"
FILE_ID = "inv-acme-2024-09.pdf"
AT = datetime(2024, 10, 1, 6, 30, tzinfo=UTC)
CUSTOMER = Customer(
    id="acme",
    name="Acme Corp",
    address=Address(lines=["1 Main St", "Springfield"], country="US"),
    currency="USD",
    invoicing_entity="cumulus",
    price_list=PriceList(id="std"),
    contacts=[
        Contact(email="ap@acme.example", name="Accounts Payable", roles=[ContactRole.BILLING]),
        Contact(email="ops@acme.example", roles=[ContactRole.TECH], primary=True),
        Contact(email="cfo@acme.example", roles=[ContactRole.BILLING, ContactRole.DPO]),
    ],
)


@dataclass(frozen=True)
class Mail:
    """An email as it left notify: the message, and the SMTP envelope's recipients."""

    message: EmailMessage
    envelope: list[str]


class Mailbox:
    """Where the flow's emails arrive: the fake mailer in memory, the SMTP sink on Kafka."""

    def __init__(self, flow: FlowBroker, sink: SmtpSink) -> None:
        self.flow = flow
        self.sink = sink
        self.fake = InMemoryMailer() if flow.kind == "memory" else None

    async def mails(self, count: int) -> list[Mail]:
        """The emails sent so far, once there are ``count`` of them."""
        if self.fake is not None:
            await self.flow.settle()
            fake = self.fake
            return [Mail(_parsed(s.message.as_bytes()), list(s.recipients)) for s in fake.sent]

        async def arrived() -> bool:
            return len(self.sink.messages()) >= count

        await eventually(arrived, f"{count} emails in the SMTP sink")
        return [Mail(m, m.get_all("Delivered-To") or []) for m in sink_mails(self.sink.directory)]


def _pdfs() -> InMemoryInvoicePdfs:
    """Invoicing's documents (the fake of its API), holding the invoice's PDF."""
    return InMemoryInvoicePdfs({FILE_ID: PDF})


def _parsed(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def _invoice(db: AsyncDatabase[dict[str, Any]]) -> InvoiceFinalized:
    """The customer in the catalog; the event announcing the invoice, naming its PDF (which
    invoicing serves: ``PDFS``)."""
    await db[CUSTOMERS].insert_one({"_id": CUSTOMER.id, **CUSTOMER.model_dump(mode="json")})
    invoice = FinalizedInvoice(
        invoice_id="inv-acme-2024-09",
        invoice_number=NUMBER,
        customer_id=CUSTOMER.id,
        customer_name=CUSTOMER.name,
        invoicing_entity_id="cumulus",
        period="2024-09",
        issue_date=date(2024, 10, 1),
        due_date=date(2024, 10, 31),
        currency="USD",
        subtotal=Decimal("1000.00"),
        tax=Decimal("234.56"),
        total=Decimal("1234.56"),
        outstanding=Decimal("1234.56"),
        line_count=12,
        pdf_file_id=FILE_ID,
        pdf_sha256=hashlib.sha256(PDF).hexdigest(),
    )
    return InvoiceFinalized.create(
        invoice,
        source="billing-invoicing",
        correlation_id="close-2024-09",
        event_id=f"invoice-finalized:{invoice.invoice_id}",
        occurred_at=AT,
    )


async def test_a_finalized_invoice_is_emailed_once_to_the_billing_contacts_with_its_pdf(
    flow: FlowBroker,
    infra: Infra,
    namespace: str,
    mongo_db: AsyncDatabase[dict[str, Any]],
    smtp_sink: SmtpSink,
) -> None:
    event = await _invoice(mongo_db)
    mailbox = Mailbox(flow, smtp_sink)
    settings = notify_settings(infra, namespace, smtp_sink.port)
    await flow.serve(build(settings, flow.publisher(), mailbox.fake, _pdfs()))
    message_id = message_id_for(MessageKind.INVOICE_FINALIZED, event.data.invoice_id)

    await flow.publish(INVOICE_FINALIZED, [event])
    [mail] = await mailbox.mails(1)
    [first] = await flow.read(NOTIFICATION_SENT.name(flow.namespace), 1)

    recipients = sorted(a.addr_spec for a in mail.message["To"].addresses)
    assert recipients == ["ap@acme.example", "cfo@acme.example"]  # not the Tech contact
    assert sorted(mail.envelope) == recipients
    assert mail.message["Subject"] == f"Invoice {NUMBER} for September 2024: $1,234.56"
    assert mail.message["Message-ID"] == message_id
    assert NUMBER in plain_text(mail.message)
    assert "$1,234.56" in plain_text(mail.message)
    [attachment] = list(mail.message.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"{NUMBER}.pdf"
    assert attachment.get_content() == PDF
    notification = NotificationSent.model_validate_json(first.value)
    assert first.key == b"acme"
    assert notification.data.message_id == message_id
    assert notification.data.recipients == recipients
    assert notification.correlation_id == "close-2024-09"

    # the same event again, as a redelivery or a replay brings it: announced again from the
    # delivery log (proof it was processed), and no second email
    await flow.publish(INVOICE_FINALIZED, [event])
    records = await flow.read(NOTIFICATION_SENT.name(flow.namespace), 2)
    assert len(records) == 2
    again = NotificationSent.model_validate_json(records[1].value)
    assert again.event_id == notification.event_id
    assert len(await mailbox.mails(1)) == 1


async def test_a_processed_bill_is_reported_to_the_operators_with_its_first_rejected_rows(
    flow: FlowBroker,
    infra: Infra,
    namespace: str,
    smtp_sink: SmtpSink,
) -> None:
    mailbox = Mailbox(flow, smtp_sink)
    settings = notify_settings(infra, namespace, smtp_sink.port, operators=["ops@cumulus.example"])
    await flow.serve(build(settings, flow.publisher(), mailbox.fake, _pdfs()))
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

    await flow.publish(BILL_PROCESSED, [bill, bill])  # the second as a redelivery brings it
    [report] = await mailbox.mails(1)
    await flow.read(NOTIFICATION_SENT.name(flow.namespace), 2)

    assert [a.addr_spec for a in report.message["To"].addresses] == ["ops@cumulus.example"]
    assert str(report.message["Subject"]).startswith("Bill ")
    text = plain_text(report.message)
    assert "USD  42.125" in text
    assert text.index("row 3, column SubAccountId: negative usage") < text.index(
        "row 12, column SubAccountId: no customer owns account 999"
    )
    assert len(await mailbox.mails(1)) == 1, "the redelivered event sent nothing again"
