"""Customer emails come from the invoicing entity that bills the customer: its name and
address as From, or as Reply-To beside the configured sender where the SMTP relay requires its
own (setting ``entity_sender``), per entity; the envelope sender stays the configured one."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import (
    Address,
    Contact,
    ContactRole,
    Customer,
    InvoicingEntity,
    PriceList,
)
from billing_catalog.store import INVOICING_ENTITIES
from billing_notify.adapters.catalog import MongoCustomerDirectory
from billing_notify.adapters.memory import (
    InMemoryCustomerDirectory,
    InMemoryDeliveryLog,
    InMemoryInvoicePdfs,
    InMemoryMailer,
)
from billing_notify.bootstrap import mail_policy
from billing_notify.domain.recipients import EntitySender, parse_mailbox
from billing_notify.service.deliver import MailPolicy, NotifyPorts
from billing_notify.service.notify_customer import notify_payment_recorded
from billing_notify.service.notify_invoice import notify_invoice_finalized
from billing_notify.settings import NotifySettings
from billing_schemas.events import (
    FinalizedInvoice,
    InvoiceFinalized,
    Payment,
    PaymentRecorded,
)

PDF = b"%PDF-1.7\n% stand-in\n%%EOF\n"
AT = datetime(2024, 10, 1, 6, 30, tzinfo=UTC)
SENDER = parse_mailbox("Billing relay <relay@billing.example>")


def entity(entity_id: str, name: str, email: str) -> InvoicingEntity:
    return InvoicingEntity(
        id=entity_id,
        name=name,
        address=Address(lines=["Hafenstr. 1"], country="DE"),
        number_prefix=entity_id.upper(),
        email=email,
    )


CUMULUS = entity("cumulus", "Cumulus Cloud GmbH", "rechnung@cumulus.example")
NIMBUS = entity("nimbus", "Nimbus, Ltd.", "billing@nimbus.example")


def customer(customer_id: str, entity_id: str) -> Customer:
    return Customer(
        id=customer_id,
        name=f"{customer_id} Inc",
        address=Address(lines=["Main St 1"], country="DE"),
        currency="EUR",
        invoicing_entity=entity_id,
        contacts=[Contact(email=f"ap@{customer_id}.example", roles=[ContactRole.BILLING])],
        price_list=PriceList(id="std"),
    )


def finalized(customer_id: str, entity_id: str) -> InvoiceFinalized:
    invoice = FinalizedInvoice(
        invoice_id=f"{customer_id}:2024-09",
        invoice_number=f"{entity_id.upper()}-2024-000001",
        customer_id=customer_id,
        customer_name=f"{customer_id} Inc",
        invoicing_entity_id=entity_id,
        period="2024-09",
        issue_date=date(2024, 10, 1),
        due_date=date(2024, 10, 31),
        currency="EUR",
        subtotal=Decimal(100),
        tax=Decimal(19),
        total=Decimal(119),
        outstanding=Decimal(119),
        line_count=1,
        pdf_file_id="pdf",
        pdf_sha256=hashlib.sha256(PDF).hexdigest(),
    )
    return InvoiceFinalized.create(
        invoice, source="billing-invoicing", correlation_id="close", occurred_at=AT
    )


def ports(*customers: Customer) -> tuple[NotifyPorts, InMemoryMailer]:
    mailer = InMemoryMailer()
    return NotifyPorts(
        customers=InMemoryCustomerDirectory(*customers, entities=(CUMULUS, NIMBUS)),
        pdfs=InMemoryInvoicePdfs({"pdf": PDF}),
        deliveries=InMemoryDeliveryLog(),
        mailer=mailer,
    ), mailer


async def test_each_invoice_email_is_from_its_invoicing_entity() -> None:
    notify, mailer = ports(customer("acme", "cumulus"), customer("globex", "nimbus"))
    policy = MailPolicy(sender=SENDER)
    await notify_invoice_finalized(finalized("acme", "cumulus"), notify, policy)
    await notify_invoice_finalized(finalized("globex", "nimbus"), notify, policy)
    froms = [str(sent.message["From"]) for sent in mailer.sent]
    # not the fixed billing@example.com: the seller of each invoice, display name quoted
    assert froms == [
        "Cumulus Cloud GmbH <rechnung@cumulus.example>",
        '"Nimbus, Ltd." <billing@nimbus.example>',
    ]
    assert [sent.message["Reply-To"] for sent in mailer.sent] == [None, None]
    # bounces still go to the configured sender
    assert [sent.sender for sent in mailer.sent] == ["relay@billing.example"] * 2


async def test_a_relay_that_requires_its_own_sender_gets_it_and_the_entity_is_reply_to() -> None:
    notify, mailer = ports(customer("acme", "cumulus"))
    policy = MailPolicy(sender=SENDER, entity_sender=EntitySender.REPLY_TO)
    await notify_invoice_finalized(finalized("acme", "cumulus"), notify, policy)
    [sent] = mailer.sent
    assert str(sent.message["From"]) == "Billing relay <relay@billing.example>"
    assert str(sent.message["Reply-To"]) == "Cumulus Cloud GmbH <rechnung@cumulus.example>"


async def test_receipts_come_from_the_customer_s_entity_and_invoices_from_the_one_named() -> None:
    # the customer moved to nimbus after cumulus issued the invoice: the invoice email is still
    # from cumulus, the invoice's seller; a receipt names no entity and comes from nimbus
    notify, mailer = ports(customer("acme", "nimbus"))
    policy = MailPolicy(sender=SENDER)
    await notify_invoice_finalized(finalized("acme", "cumulus"), notify, policy)
    payment = Payment(
        payment_id="p-1",
        invoice_id="acme:2024-09",
        invoice_number="CUMULUS-2024-000001",
        customer_id="acme",
        amount=Decimal(119),
        currency="EUR",
        method="bank transfer",
        reference="r",
        paid_on=date(2024, 10, 20),
        outstanding_after=Decimal(0),
    )
    receipt = PaymentRecorded.create(payment, source="billing-invoicing", correlation_id="p")
    await notify_payment_recorded(receipt, notify, policy)
    assert [sent.message["From"].addresses[0].addr_spec for sent in mailer.sent] == [
        "rechnung@cumulus.example",
        "billing@nimbus.example",
    ]


def test_the_setting_reaches_the_policy() -> None:
    settings = NotifySettings.model_validate({"entity_sender": "reply_to"})
    assert mail_policy(settings).entity_sender is EntitySender.REPLY_TO
    assert mail_policy(NotifySettings()).entity_sender is EntitySender.FROM
    with pytest.raises(ValueError, match="entity_sender"):
        NotifySettings.model_validate({"entity_sender": "bcc"})


@pytest.mark.integration
async def test_the_catalog_s_invoicing_entities_are_read_as_invoicing_writes_them(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    await mongo_db[INVOICING_ENTITIES].insert_one(
        {"_id": NIMBUS.id, **NIMBUS.model_dump(mode="json")}
    )
    directory = MongoCustomerDirectory(mongo_db)
    assert await directory.invoicing_entity("nimbus") == NIMBUS
    assert await directory.invoicing_entity("absent") is None
