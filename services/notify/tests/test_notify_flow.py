"""Notify in-process against the real broker, the real FerretDB and a real SMTP server.

An ``InvoiceFinalized`` event goes onto this test's namespaced topic; the service's consumer
(the app's broker, started in-process) must email the stored PDF to the Billing contacts once,
however often the event arrives, and must publish ``NotificationSent``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from notify_test_support import consumed, notify_settings, publish, running, sink_mails
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Address, Contact, ContactRole, Customer, PriceList
from billing_catalog.store import CUSTOMERS
from billing_devtools.mail_sink import MaildirSink, serve
from billing_devtools.testing import TopicReader, eventually
from billing_notify.adapters.delivery_log import DELIVERIES
from billing_notify.adapters.memory import InMemoryInvoicePdfs
from billing_notify.domain.messages import MessageKind, message_id_for
from billing_schemas.events import FinalizedInvoice, InvoiceFinalized, NotificationSent
from billing_schemas.topics import Topic, dead_letter_name, topic_name

if TYPE_CHECKING:
    from conftest import Infra, SmtpSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

INVOICE_NUMBER = "ACME-2024-000001"
FILE_ID = "inv-acme-2024-09.pdf"
# Not a real PDF, but bytes of every value and of a realistic size: they must arrive unchanged.
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 200 + b"\n%%EOF\n"
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


def _pdfs() -> InMemoryInvoicePdfs:
    """Invoicing's documents (the fake of its API), holding the invoice's PDF."""
    return InMemoryInvoicePdfs({FILE_ID: PDF})


async def _store_customer_and_pdf(db: AsyncDatabase[dict[str, Any]]) -> FinalizedInvoice:
    """The catalog document; the invoice that names it and the PDF invoicing stored."""
    await db[CUSTOMERS].insert_one({"_id": CUSTOMER.id, **CUSTOMER.model_dump(mode="json")})
    return FinalizedInvoice(
        invoice_id="inv-acme-2024-09",
        invoice_number=INVOICE_NUMBER,
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


def _event(invoice: FinalizedInvoice) -> InvoiceFinalized:
    return InvoiceFinalized.create(
        invoice,
        source="billing-invoicing",
        correlation_id="close-2024-09",
        event_id=f"invoice-finalized:{invoice.invoice_id}",
        occurred_at=datetime(2024, 10, 1, 6, 30, tzinfo=UTC),
    )


async def test_a_finalized_invoice_is_emailed_once_with_its_pdf(
    infra: Infra,
    namespace: str,
    mongo_db: AsyncDatabase[dict[str, Any]],
    smtp_sink: SmtpSink,
) -> None:
    invoice = await _store_customer_and_pdf(mongo_db)
    settings = notify_settings(infra, namespace, smtp_sink.port)
    event = _event(invoice)
    message_id = message_id_for(MessageKind.INVOICE_FINALIZED, invoice.invoice_id)
    sent_topic = topic_name(Topic.NOTIFICATION_SENT, settings.topic_namespace)

    async with (
        running(settings, _pdfs()),
        TopicReader(settings.kafka_bootstrap_servers, sent_topic) as sent,
    ):
        await publish(settings, Topic.INVOICE_FINALIZED, event.data.customer_id, event)

        async def one_mail() -> bool:
            return len(smtp_sink.messages()) >= 1

        await eventually(one_mail, "the invoice email")
        [mail] = sink_mails(smtp_sink.directory)
        recipients = sorted(a.addr_spec for a in mail["To"].addresses)
        assert recipients == ["ap@acme.example", "cfo@acme.example"]  # not the Tech contact
        assert sorted(mail.get_all("Delivered-To") or []) == recipients  # the SMTP envelope
        assert mail["Subject"] == f"Invoice {INVOICE_NUMBER} for September 2024: $1,234.56"
        assert mail["Message-ID"] == message_id
        text: Any = mail.get_body(("plain",))
        assert INVOICE_NUMBER in text.get_content()
        assert "$1,234.56" in text.get_content()
        [attachment] = list(mail.iter_attachments())
        assert isinstance(attachment, EmailMessage)
        assert attachment.get_content_type() == "application/pdf"
        assert attachment.get_filename() == f"{INVOICE_NUMBER}.pdf"
        assert attachment.get_content() == PDF

        [first] = await sent.wait_for(1)
        notification = NotificationSent.model_validate_json(first.value)
        assert first.key == b"acme"
        assert notification.data.message_id == message_id
        assert notification.data.recipients == recipients
        assert notification.data.smtp_response.startswith("250 ")
        assert notification.correlation_id == "close-2024-09"

        # The same event again, as a redelivery or a replay would bring it.
        await publish(settings, Topic.INVOICE_FINALIZED, event.data.customer_id, event)
        # Its NotificationSent is republished from the log: proof it was processed...
        records = await sent.wait_for(2)
        await consumed(settings, Topic.INVOICE_FINALIZED)
        # ...and nothing else was sent.
        assert len(smtp_sink.messages()) == 1
        assert len(records) == 2
        again = NotificationSent.model_validate_json(records[1].value)
        assert again.event_id == notification.event_id

    deliveries = [doc async for doc in mongo_db[DELIVERIES].find({})]
    assert len(deliveries) == 1
    [delivery] = deliveries
    assert delivery["_id"] == message_id
    assert (delivery["status"], delivery["attempts"]) == ("sent", 1)
    assert (delivery["invoice_id"], delivery["customer_id"]) == (invoice.invoice_id, "acme")
    assert delivery["smtp_response"] == notification.data.smtp_response


class RefusingFirst:
    """An SMTP handler that answers the first ``refusals`` DATA commands with ``reply``, then
    stores messages like the mail sink (``reply`` ``None``: refuse forever)."""

    def __init__(self, directory: Path, reply: str, refusals: int | None) -> None:
        self.sink = MaildirSink(directory)
        self.reply = reply
        self.refusals = refusals
        self.refused = 0

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.refusals is None or self.refused < self.refusals:
            self.refused += 1
            return self.reply
        return await self.sink.handle_DATA(server, session, envelope)


@asynccontextmanager
async def smtp_server(handler: RefusingFirst) -> AsyncIterator[int]:
    server = await serve(handler, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


async def test_a_temporary_refusal_is_retried_until_the_email_is_accepted(
    infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    invoice = await _store_customer_and_pdf(mongo_db)
    handler = RefusingFirst(tmp_path / "mail", "451 4.3.0 Mailbox busy, try later", refusals=2)
    async with smtp_server(handler) as port:
        settings = notify_settings(infra, namespace, port)
        sent_topic = topic_name(Topic.NOTIFICATION_SENT, settings.topic_namespace)
        reader = TopicReader(infra.kafka_bootstrap_servers, sent_topic)
        async with running(settings, _pdfs()), reader as sent:
            await publish(settings, Topic.INVOICE_FINALIZED, invoice.customer_id, _event(invoice))
            await sent.wait_for(1)
            await consumed(settings, Topic.INVOICE_FINALIZED)

    assert handler.refused == 2
    assert len(handler.sink.received) == 1
    [delivery] = [doc async for doc in mongo_db[DELIVERIES].find({})]
    # the consumer's attempt, then two retries by the re-driver (0.2 s, then 0.4 s later)
    assert (delivery["status"], delivery["attempts"], delivery["retries"]) == ("sent", 3, 2)
    assert delivery["delivered_to"] == ["ap@acme.example", "cfo@acme.example"]


async def test_a_permanent_refusal_is_logged_and_dead_lettered(
    infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    invoice = await _store_customer_and_pdf(mongo_db)
    handler = RefusingFirst(tmp_path / "mail", "554 5.7.1 Rejected by policy", refusals=None)
    async with smtp_server(handler) as port:
        settings = notify_settings(infra, namespace, port)
        dlq = dead_letter_name(Topic.INVOICE_FINALIZED, settings.topic_namespace)
        async with (
            running(settings, _pdfs()),
            TopicReader(infra.kafka_bootstrap_servers, dlq) as dead,
        ):
            event = _event(invoice)
            await publish(settings, Topic.INVOICE_FINALIZED, event.data.customer_id, event)
            [letter] = await dead.wait_for(1)
            await consumed(settings, Topic.INVOICE_FINALIZED)
            await asyncio.sleep(1.0)  # ten polls of the re-driver: none may try again

    assert handler.refused == 1  # no retry storm
    headers = {key: value.decode() for key, value in letter.headers}
    assert "PermanentMailError" in headers["x-error"]
    assert "554" in headers["x-error"]
    assert headers["x-failed-by"] == "notify"
    assert InvoiceFinalized.model_validate_json(letter.value) == event
    [delivery] = [doc async for doc in mongo_db[DELIVERIES].find({})]
    assert delivery["status"] == "failed"
    assert "554 5.7.1 Rejected by policy" in delivery["smtp_response"]
