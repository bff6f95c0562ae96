"""Payments, credit notes, voiding and overdue invoices, on the real database (FerretDB).

One German customer, one invoice of 100.00 + 19 % VAT = 119.00 EUR, issued 2024-10-01 with 30
days' terms (due 2024-10-31), finalized by the real close use case (with a stand-in PDF
renderer). The use cases' tests record events with a fake publisher; the last test runs the
``billing`` commands as an operator would and reads their events from the real broker.
Figures are computed by hand.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from invoicing_test_support import SETTLE_CATALOG
from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents, InMemoryInvoicePdfStore
from billing_invoicing.adapters.pdf import render_invoice_html
from billing_invoicing.adapters.settlement_repo import CUSTOMER_CREDITS, MongoSettlementRepository
from billing_invoicing.domain.invoice import InvoiceDocument, InvoiceStatus
from billing_invoicing.domain.settlement import SettlementError
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges
from billing_invoicing.service.generate_invoices import (
    CatalogError,
    InvoicingPorts,
    close_invoice,
    preview,
)
from billing_invoicing.service.settle_invoices import (
    SettlementPorts,
    dues,
    flag_overdue,
    issue_credit_note,
    record_payment,
)
from billing_runtime.kafka import ensure_topics
from billing_schemas.events import (
    ChargeCategory,
    CreditNoteIssued,
    InvoiceOverdue,
    InvoicePaid,
    LineType,
    PaymentRecorded,
    PeriodClose,
    PeriodClosing,
    RatedCharge,
)
from billing_schemas.topics import Topic, all_topic_names, topic_name

pytestmark = pytest.mark.integration

D = Decimal
NUMBER = "CCR-2024-000001"


class FakeRenderer:
    async def render(self, invoice: InvoiceDocument) -> bytes:
        return f"%PDF-stand-in {invoice.number}".encode()


def charge(price: str) -> RatedCharge:
    return RatedCharge(
        charge_id="c1",
        record_id="c1",
        customer_id="alpha",
        provider="AWS",
        sub_account_id="111",
        billing_period="2024-09",
        charge_period_start=datetime(2024, 9, 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name="Amazon EC2",
        cost=D("80"),
        cost_currency="EUR",
        price=D(price),
        currency="EUR",
        margin=D(price) - D("80"),
        rule="markup 25% on billed cost (global)",
        price_list_id="p",
        price_list_version=1,
    )


@pytest.fixture
async def setup(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> tuple[SettlementPorts, InMemoryInvoiceEvents]:
    catalog = MongoCatalogRepository(mongo_db)
    await catalog.apply(SETTLE_CATALOG)
    invoices = MongoInvoiceRepository(mongo_db)
    await invoices.ensure_indexes()
    settlements = MongoSettlementRepository(mongo_db)
    await settlements.ensure_indexes()
    events = InMemoryInvoiceEvents()
    await add_charges(invoices, [PositionedCharge(charge("100.00"))])
    ports = InvoicingPorts(catalog, invoices, FakeRenderer(), InMemoryInvoicePdfStore(), events)
    marker = PeriodClosing.create(
        PeriodClose(customer_id="alpha", period="2024-09", issue_date=date(2024, 10, 1)),
        source="test",
        correlation_id="t",
    )
    outcome = await close_invoice(ports, marker)
    assert (outcome.number, outcome.total) == (NUMBER, D("119.00"))  # 100 + 19% of 100
    return SettlementPorts(catalog, invoices, settlements, events), events


async def pay(ports: SettlementPorts, amount: str, method: str, reference: str) -> Any:
    return await record_payment(
        ports,
        number=NUMBER,
        amount=D(amount),
        method=method,
        reference=reference,
        paid_on=date(2024, 10, 20),
        correlation_id="t",
    )


async def test_payments_follow_outstanding_and_status_and_overpayment_is_customer_credit(
    setup: tuple[SettlementPorts, InMemoryInvoiceEvents],
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    ports, events = setup

    first = await pay(ports, "50.00", "bank transfer", "BT-1")
    # 119.00 - 50.00 = 69.00 outstanding
    assert (first.status, first.payment.outstanding_after) == (
        InvoiceStatus.PARTIALLY_PAID,
        D("69.00"),
    )
    assert first.payment.method == "Bank transfer"  # the seller's spelling

    again = await pay(ports, "50.00", "Bank transfer", "BT-1")  # the same payment, retried
    assert again.already_recorded
    assert again.payment.payment_id == first.payment.payment_id
    assert again.payment.outstanding_after == D("69.00")
    with pytest.raises(SettlementError, match=r"already recorded with amount 50\.00"):
        await pay(ports, "60.00", "Bank transfer", "BT-1")

    last = await pay(ports, "80.00", "Card", "CARD-7")
    # paid 50 + 80 = 130.00 > 119.00: nothing outstanding, 11.00 overpaid -> customer credit
    assert (last.status, last.payment.outstanding_after) == (InvoiceStatus.PAID, D("0.00"))
    assert last.customer_credit_added == D("11.00")

    doc = await mongo_db["invoicing_invoices"].find_one({"_id": "alpha:2024-09"})
    assert doc is not None
    assert (doc["status"], doc["paid_units"], doc["outstanding_units"]) == (
        "paid",
        130_000_000_000,
        0,
    )
    [credit] = await mongo_db[CUSTOMER_CREDITS].find({}).to_list()
    assert (credit["customer_id"], credit["amount_units"]) == ("alpha", 11_000_000_000)
    owed = await dues(ports, NUMBER)
    assert (owed.total, owed.paid, owed.outstanding, owed.customer_credit) == (
        D("119.00"),
        D("130.00"),
        D("0.00"),
        D("11.00"),
    )
    assert [m.kind for m in owed.payment_methods] == ["Bank transfer", "Card"]
    # one event per payment, not per attempt; the document of the invoice never changed
    assert [e.data.amount for e in events.payments] == [D("50.00"), D("80.00")]
    assert [e.event_id for e in events.payments] == [
        f"payment-recorded:{first.payment.payment_id}",
        f"payment-recorded:{last.payment.payment_id}",
    ]
    assert InvoiceDocument.model_validate(doc["document"]).outstanding == D("119.00")
    # paid once, by the card payment; the retried first payment announced nothing
    [paid] = events.paid
    assert (paid.event_id, paid.data.settled_by) == (
        "invoice-paid:alpha:2024-09",
        last.payment.payment_id,
    )
    assert (paid.data.total, paid.data.paid, paid.data.credited) == (
        D("119.00"),
        D("130.00"),  # 50.00 + 80.00
        D("0.00"),
    )
    await pay(ports, "80.00", "Card", "CARD-7")  # retried after it was paid
    assert len(events.paid) == 1
    assert events.voided == []


@pytest.mark.parametrize(
    ("amount", "method", "message"),
    [
        ("10.005", "Card", r"the amount paid 10\.005 has more decimals than EUR's 2"),
        ("-5", "Card", r"the amount paid must be positive"),
        ("10", "cash", r"payment method 'cash' is not one the seller offers"),
    ],
)
async def test_a_payment_that_cannot_be_is_refused(
    setup: tuple[SettlementPorts, InMemoryInvoiceEvents], amount: str, method: str, message: str
) -> None:
    ports, events = setup
    with pytest.raises(SettlementError, match=message):
        await pay(ports, amount, method, "R-1")
    assert events.payments == []


async def test_overdue_after_the_due_date_until_paid(
    setup: tuple[SettlementPorts, InMemoryInvoiceEvents],
) -> None:
    ports, events = setup

    assert await flag_overdue(ports, as_of=date(2024, 10, 31), correlation_id="t") == []
    [late] = await flag_overdue(ports, as_of=date(2024, 11, 5), correlation_id="t")
    # due 2024-10-31, checked 2024-11-05: 5 days
    assert (late.invoice_number, late.days_overdue, late.outstanding) == (NUMBER, 5, D("119.00"))
    assert events.overdue[0].event_id == "invoice-overdue:alpha:2024-09:2024-11-05"

    partly = await pay(ports, "19.00", "Card", "C-1")
    assert partly.status is InvoiceStatus.OVERDUE  # still owes 100.00
    [still] = await flag_overdue(ports, as_of=date(2024, 11, 6), correlation_id="t")
    assert (still.days_overdue, still.outstanding) == (6, D("100.00"))

    paid = await pay(ports, "100.00", "Card", "C-2")
    assert paid.status is InvoiceStatus.PAID
    assert await flag_overdue(ports, as_of=date(2024, 11, 7), correlation_id="t") == []


async def credit(ports: SettlementPorts, amount: str | None, reason: str) -> Any:
    return await issue_credit_note(
        ports,
        number=NUMBER,
        amount=None if amount is None else D(amount),
        reason=reason,
        issue_date=date(2024, 11, 2),
        correlation_id="t",
    )


async def test_credit_notes_reduce_what_is_owed_and_void_cancels_the_rest(
    setup: tuple[SettlementPorts, InMemoryInvoiceEvents],
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    ports, events = setup

    sla = await credit(ports, "11.90", "SLA breach in September")
    assert sla.credit_note.credit_note_number == "CCR-CN-2024-000001"
    assert sla.status is InvoiceStatus.FINALIZED
    note = await mongo_db["invoicing_credit_notes"].find_one(
        {"_id": sla.credit_note.credit_note_id}
    )
    assert note is not None
    # tax part: 11.90 x 19.00 / 119.00 = 1.90; net 10.00
    assert (note["tax_units"], note["net_units"]) == (1_900_000_000, 10_000_000_000)
    retry = await credit(ports, "11.90", "SLA breach in September")
    assert retry.already_issued
    assert retry.credit_note.credit_note_number == sla.credit_note.credit_note_number
    assert (await dues(ports, NUMBER)).outstanding == D("107.10")  # 119.00 - 11.90

    with pytest.raises(SettlementError, match=r"only 107\.10 is left"):
        await credit(ports, "200", "too much")

    await pay(ports, "107.10", "Bank transfer", "BT-9")
    void = await credit(ports, None, "issued in error")
    # voiding credits the 107.10 still owed; 107.10 was paid, so it becomes customer credit
    assert (void.credit_note.credit_note_number, void.credit_note.total) == (
        "CCR-CN-2024-000002",
        D("107.10"),
    )
    assert void.status is InvoiceStatus.VOID
    assert void.customer_credit_added == D("107.10")
    assert [e.data.credit_note_number for e in events.credit_notes] == [
        "CCR-CN-2024-000001",
        "CCR-CN-2024-000002",
    ]
    with pytest.raises(SettlementError, match="is void"):
        await pay(ports, "1.00", "Card", "late")
    standing = await dues(ports, NUMBER)
    # credited 11.90 + 107.10 = 119.00: nothing owed, nothing outstanding; paid 107.10 is credit
    assert (standing.status, standing.credited, standing.outstanding) == (
        "void",
        D("119.00"),
        D("0.00"),
    )
    assert standing.customer_credit == D("107.10")
    # paid by BT-9 (107.10 against 107.10 owed), then voided by the second credit note
    [paid] = events.paid
    assert paid.data.paid == D("107.10")
    [voided] = events.voided
    assert (voided.event_id, voided.data.credit_note_number, voided.data.total) == (
        "invoice-voided:alpha:2024-09",
        "CCR-CN-2024-000002",
        D("119.00"),
    )
    assert voided.data.reason == "issued in error"
    retried = await credit(ports, None, "issued in error")  # the same note, no second event
    assert retried.already_issued
    assert retried.credit_note.credit_note_number == "CCR-CN-2024-000002"
    assert len(events.voided) == 1
    assert len(events.credit_notes) == 2
    with pytest.raises(SettlementError, match="is void"):
        await credit(ports, "1.00", "after the void")


ROOT = Path(__file__).resolve().parents[3]
BILLING = ROOT / ".venv" / "bin" / "billing"


BOX = re.compile("[\u2500-\u257f]")


async def billing(env: dict[str, str], *args: str, check: bool = True) -> str:
    process = await asyncio.create_subprocess_exec(
        str(BILLING),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = BOX.sub(" ", out.decode())  # rich's table borders
    if check and process.returncode != 0:
        raise AssertionError(f"billing {' '.join(args)} exited {process.returncode}:\n{text}")
    if not check:
        assert process.returncode != 0, text
    return " ".join(text.split())


async def read_events(servers: str, topic: str, n: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(values) < n:
                batch = await consumer.getmany(timeout_ms=500)
                values += [m.value for records in batch.values() for m in records if m.value]
    finally:
        await consumer.stop()
    return values


@pytest.mark.timeout(420)  # nine CLI runs; the credit note renders its PDF
async def test_pay_show_csv_credit_and_overdue_from_the_command_line(
    mongo_db: AsyncDatabase[dict[str, Any]], namespace: str, tmp_path: Path, infra: Any
) -> None:
    ns = f"{namespace}."
    await ensure_topics(infra.kafka_bootstrap_servers, all_topic_names(ns))
    catalog = MongoCatalogRepository(mongo_db)
    await catalog.apply(SETTLE_CATALOG)
    invoices = MongoInvoiceRepository(mongo_db)
    await invoices.ensure_indexes()
    await add_charges(invoices, [PositionedCharge(charge("100.00"))])
    ports = InvoicingPorts(
        catalog, invoices, FakeRenderer(), InMemoryInvoicePdfStore(), InMemoryInvoiceEvents()
    )
    marker = PeriodClose(customer_id="alpha", period="2024-09", issue_date=date(2024, 10, 1))
    await close_invoice(ports, PeriodClosing.create(marker, source="t", correlation_id="t"))

    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env |= {
        "BILLING_INVOICING_KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "BILLING_INVOICING_MONGODB_URL": infra.mongodb_url,
        "BILLING_INVOICING_MONGODB_DATABASE": namespace,
        "BILLING_INVOICING_TOPIC_NAMESPACE": ns,
        "COLUMNS": "200",
    }

    dues = await billing(env, "pay", NUMBER)
    assert "Total €119.00" in dues
    assert "Outstanding €119.00" in dues
    assert f"Bank transfer: IBAN DE89 3704 0044 0532 0130 00 reference {NUMBER}" in dues

    out = await billing(
        env, "pay", NUMBER, "--amount", "100", "--method", "card", "--reference", "CH-1",
        "--date", "2024-10-20",
    )  # fmt: skip
    # 119.00 - 100.00 = 19.00 still owed
    assert "recorded: €100.00 by Card (CH-1) on 2024-10-20" in out
    assert "is partially_paid, outstanding €19.00" in out
    again = await billing(
        env, "pay", NUMBER, "--amount", "100", "--method", "Card", "--reference", "CH-1",
        "--date", "2024-10-20",
    )  # fmt: skip
    assert "already recorded" in again
    refused = await billing(
        env, "pay", NUMBER, "--amount", "1.5", "--method", "cheque", "--reference", "X",
        check=False,
    )  # fmt: skip
    assert "payment method 'cheque' is not one the seller offers ('Bank transfer', 'Card')" in (
        refused
    )

    overdue = await billing(env, "invoices", "overdue", "--as-of", "2024-11-30")
    assert f"{NUMBER} alpha 2024-10-31 30 €19.00" in overdue  # 30 days after 31 October

    out = await billing(env, "pay", NUMBER, "--amount", "25.00", "--method", "Bank transfer",
                        "--reference", "BT-2")  # fmt: skip
    # paid 100 + 25 = 125.00 against 119.00: 6.00 overpaid
    assert "is paid, outstanding €0.00" in out
    assert "overpayment: €6.00 recorded as credit of customer alpha" in out

    out = await billing(env, "invoices", "credit", NUMBER, "--amount", "11.90", "--reason", "SLA")
    # owed 119.00 - 11.90 = 107.10, paid 125.00: 17.90 overpaid, 6.00 of it recorded before
    assert "credit note CCR-CN-" in out
    assert "€11.90 recorded as credit of customer alpha" in out

    shown = await billing(env, "invoices", "show", NUMBER)
    assert "Amazon EC2 (AWS) 1 €100.00" in shown
    assert "VAT 19% (DE) €19.00" in shown
    assert "Customer credit of alpha: €17.90" in shown

    target = tmp_path / "usage.csv"
    out = await billing(env, "invoices", "csv", NUMBER, "-o", str(target))
    assert "(1 usage lines)" in out
    [row] = list(csv.DictReader(target.read_text(encoding="utf-8").splitlines()))
    assert (row["charge_id"], row["cost"], row["price"], row["margin"]) == (
        "c1",
        "80.000000000",
        "100.000000000",
        "20.000000000",
    )
    assert row["rule"] == "markup 25% on billed cost (global)"

    servers = infra.kafka_bootstrap_servers
    payments = [
        PaymentRecorded.model_validate_json(v)
        for v in await read_events(servers, topic_name(Topic.PAYMENT_RECORDED, ns), 2)
    ]
    assert [(p.data.amount, p.data.outstanding_after) for p in payments] == [
        (D("100.00"), D("19.00")),
        (D("25.00"), D("0.00")),
    ]
    [note] = await read_events(servers, topic_name(Topic.CREDIT_NOTE_ISSUED, ns), 1)
    assert CreditNoteIssued.model_validate_json(note).data.total == D("11.90")
    [late] = await read_events(servers, topic_name(Topic.INVOICE_OVERDUE, ns), 1)
    assert InvoiceOverdue.model_validate_json(late).data.days_overdue == 30
    [paid] = await read_events(servers, topic_name(Topic.INVOICE_PAID, ns), 1)
    assert InvoicePaid.model_validate_json(paid).data.settled_by == payments[1].data.payment_id


async def test_a_missing_vat_rate_stops_the_close_and_leaves_the_draft(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    catalog = MongoCatalogRepository(mongo_db)
    await catalog.apply(SETTLE_CATALOG.model_copy(update={"tax_rates": []}))
    invoices = MongoInvoiceRepository(mongo_db)
    await invoices.ensure_indexes()
    await add_charges(invoices, [PositionedCharge(charge("100.00"))])
    events = InMemoryInvoiceEvents()
    ports = InvoicingPorts(catalog, invoices, FakeRenderer(), InMemoryInvoicePdfStore(), events)
    marker = PeriodClosing.create(
        PeriodClose(customer_id="alpha", period="2024-09", issue_date=date(2024, 10, 1)),
        source="test",
        correlation_id="t",
    )

    with pytest.raises(CatalogError, match=r"no tax rate for DE in effect on 2024-09-30"):
        await close_invoice(ports, marker)

    doc = await invoices.invoice("alpha:2024-09")
    assert doc is not None
    assert doc["status"] == "draft"
    assert events.finalized == []
    [dry] = await preview(ports, period="2024-09")
    assert dry.action.startswith("skipped: cannot assemble alpha:2024-09: no tax rate for DE")


async def test_partial_credit_notes_and_a_void_reverse_exactly_the_invoices_tax(
    setup: tuple[SettlementPorts, InMemoryInvoiceEvents],
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    # 119.00 with 19.00 VAT, credited in three parts: 39.67, 39.67, then the void's 39.66.
    # Each note's tax is that of everything credited so far minus what earlier notes took:
    # 39.67 x 19 / 119 = 6.3337 -> 6.33; 79.34 x 19 / 119 = 12.6675 -> 12.67, so 12.67 - 6.33
    # = 6.34; the void takes the rest, 19.00 - 12.67 = 6.33. Sum 19.00 (each note's proportion
    # rounded alone would be 6.33 x 3 = 18.99, a cent of VAT never reversed).
    ports, _ = setup
    await credit(ports, "39.67", "first third")
    await credit(ports, "39.67", "second third")
    await credit(ports, None, "the rest")
    notes = await mongo_db["invoicing_credit_notes"].find().sort("number", 1).to_list()
    assert [(n["amount_units"], n["tax_units"]) for n in notes] == [
        (39_670_000_000, 6_330_000_000),
        (39_670_000_000, 6_340_000_000),
        (39_660_000_000, 6_330_000_000),
    ]
    assert sum(n["tax_units"] for n in notes) == 19_000_000_000
    assert sum(n["net_units"] for n in notes) == 100_000_000_000


async def test_a_negative_invoice_owes_nothing_and_its_credit_is_the_customers(
    setup: tuple[SettlementPorts, InMemoryInvoiceEvents],
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    # October: a provider credit of 50.00 and nothing else: -50.00 + 19 % VAT (-9.50) = -59.50.
    # Finalized with nothing outstanding, and the 59.50 owed back recorded as customer credit.
    ports, events = setup
    refund = charge("-50.00").model_copy(
        update={"charge_id": "c2", "record_id": "c2", "billing_period": "2024-10"}
    )
    invoices = MongoInvoiceRepository(mongo_db)
    await add_charges(invoices, [PositionedCharge(refund)])
    invoicing = InvoicingPorts(
        MongoCatalogRepository(mongo_db),
        invoices,
        FakeRenderer(),
        InMemoryInvoicePdfStore(),
        events,
    )
    marker = PeriodClosing.create(
        PeriodClose(customer_id="alpha", period="2024-10", issue_date=date(2024, 11, 1)),
        source="test",
        correlation_id="t",
    )
    outcome = await close_invoice(invoicing, marker)
    assert (outcome.number, outcome.total) == ("CCR-2024-000002", D("-59.50"))
    doc = await mongo_db["invoicing_invoices"].find_one({"_id": "alpha:2024-10"})
    assert doc is not None
    assert (doc["total_units"], doc["outstanding_units"]) == (-59_500_000_000, 0)
    assert doc["document"]["outstanding"] == "0"
    credits = await mongo_db[CUSTOMER_CREDITS].find({"invoice_id": "alpha:2024-10"}).to_list()
    assert [(c["amount_units"], c["currency"]) for c in credits] == [(59_500_000_000, "EUR")]
    finalized = events.finalized[-1].data
    assert (finalized.total, finalized.outstanding) == (D("-59.50"), D(0))

    standing = await dues(ports, "CCR-2024-000002")
    assert (standing.outstanding, standing.customer_credit) == (D("0.00"), D("59.50"))
    # settling anything later finds the credit recorded: a payment on the September invoice
    # and a look at October's dues again add nothing to it
    await pay(ports, "119.00", "Card", "R-sept")
    assert (await dues(ports, "CCR-2024-000002")).customer_credit == D("59.50")

    html = render_invoice_html(InvoiceDocument.model_validate(doc["document"]))
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    # the credit line is negative, as it is; what is owed is never a negative amount
    assert "Credit to your account €59.50" in text
    assert "Amount due Nothing to pay" in text
    assert "Please pay" not in text
    assert "-€59.50" not in text
