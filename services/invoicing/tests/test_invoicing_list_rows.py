"""The invoice list's rows (``adapters/invoice_rows.py``) on the real database: each write of an
issued invoice (its finalization, a payment, a credit note, a void, overdue) changes its row
the same way it changes the invoice; a redelivered close or an older row changes nothing; a
crash between a settlement write and its row is repaired by the next reader of the invoice;
concurrent writers of one block (two processes) lose nothing; a customer's pages come in list
order across blocks, read from the rows and not from the invoices.

One German customer, one invoice of 100.00 + 19 % VAT = 119.00 EUR, issued 2024-10-01, due
2024-10-31, finalized by the real close use case (as in ``test_invoicing_settlement.py``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from invoicing_test_support import SETTLE_CATALOG
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.invoice_repo import INVOICES, MongoInvoiceRepository
from billing_invoicing.adapters.invoice_rows import (
    INVOICE_ROWS,
    ROW_LOCKS,
    InvoiceRows,
    block_of,
)
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents, InMemoryInvoicePdfStore
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.adapters.stored_rows import invoice_row_of
from billing_invoicing.domain.access import Scope
from billing_invoicing.domain.invoice import InvoiceDocument, InvoiceStatus
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges
from billing_invoicing.service.generate_invoices import InvoicingPorts, close_invoice
from billing_invoicing.service.invoice_queries import (
    InvoiceFilter,
    InvoiceSummary,
    QueryPorts,
    find_invoices,
    summary_of,
)
from billing_invoicing.service.settle_invoices import (
    SettlementPorts,
    dues,
    flag_overdue,
    issue_credit_note,
    record_payment,
)
from billing_runtime.mongo import CommandRecorder
from billing_schemas.events import (
    ChargeCategory,
    LineType,
    PeriodClose,
    PeriodClosing,
    RatedCharge,
)

pytestmark = pytest.mark.integration

D = Decimal
NUMBER = "CCR-2024-000001"
INVOICE_ID = "alpha:2024-09"
OPERATOR = Scope(None)
UNIT = 10**9  # the stored unit of EUR amounts (docs/money.md)


class FakeRenderer:
    async def render(self, invoice: InvoiceDocument) -> bytes:
        return f"%PDF-stand-in {invoice.number}".encode()


def charge() -> RatedCharge:
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
        price=D("100.00"),
        currency="EUR",
        margin=D("20.00"),
        rule="markup 25% on billed cost (global)",
        price_list_id="p",
        price_list_version=1,
    )


MARKER = PeriodClosing.create(
    PeriodClose(customer_id="alpha", period="2024-09", issue_date=date(2024, 10, 1)),
    source="test",
    correlation_id="t",
)


class Setup:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.catalog = MongoCatalogRepository(db)
        self.invoices = MongoInvoiceRepository(db)
        self.settlements = MongoSettlementRepository(db)
        self.events = InMemoryInvoiceEvents()
        self.pdfs = InMemoryInvoicePdfStore()
        self.closing = InvoicingPorts(
            self.catalog, self.invoices, FakeRenderer(), self.pdfs, self.events
        )
        self.settle = SettlementPorts(self.catalog, self.invoices, self.settlements, self.events)
        self.queries = QueryPorts(self.invoices, self.settle, self.pdfs)

    async def listed(self) -> InvoiceSummary:
        """The customer's invoice as the list shows it (from its row)."""
        page = await find_invoices(
            self.queries, OPERATOR, InvoiceFilter(customer_id="alpha"), offset=0, limit=10
        )
        [item] = page.items
        return item

    async def stored(self) -> InvoiceSummary:
        """The same invoice read from its own document."""
        doc = await self.db[INVOICES].find_one({"_id": INVOICE_ID})
        assert doc is not None
        return summary_of(invoice_row_of(doc))

    async def row(self) -> dict[str, Any]:
        block = await self.db[INVOICE_ROWS].find_one({"_id": block_of(INVOICE_ID)})
        assert block is not None
        row: dict[str, Any] = json.loads(block["rows"])[INVOICE_ID]
        return row

    async def pay(self, amount: str, reference: str) -> None:
        await record_payment(
            self.settle,
            number=NUMBER,
            amount=D(amount),
            method="Card",
            reference=reference,
            paid_on=date(2024, 10, 20),
            correlation_id="t",
        )

    async def credit(self, amount: str | None) -> None:
        await issue_credit_note(
            self.settle,
            number=NUMBER,
            amount=None if amount is None else D(amount),
            reason="test",
            issue_date=date(2024, 11, 2),
            correlation_id="t",
        )


@pytest.fixture
async def setup(mongo_db: AsyncDatabase[dict[str, Any]]) -> Setup:
    it = Setup(mongo_db)
    await it.catalog.apply(SETTLE_CATALOG)
    await it.invoices.ensure_indexes()
    await it.settlements.ensure_indexes()
    await add_charges(it.invoices, [PositionedCharge(charge())])
    outcome = await close_invoice(it.closing, MARKER)
    assert (outcome.number, outcome.total) == (NUMBER, D("119.00"))
    return it


async def test_each_write_of_an_issued_invoice_changes_its_row_like_the_invoice(
    setup: Setup,
) -> None:
    async def same(status: str, outstanding: str) -> None:
        listed = await setup.listed()
        assert listed == await setup.stored()
        assert (listed.status, listed.outstanding) == (status, D(outstanding))

    row = await setup.row()
    assert (row["number"], row["status"], row["total_units"]) == (NUMBER, "finalized", 119 * UNIT)
    assert (row["issue_date"], row["due_date"], row["currency"]) == (
        "2024-10-01",
        "2024-10-31",
        "EUR",
    )
    await same("finalized", "119.00")
    assert (await setup.listed()).has_pdf

    await flag_overdue(setup.settle, as_of=date(2024, 11, 5), correlation_id="t")
    await same("overdue", "119.00")
    await setup.pay("19.00", "C-1")
    await same("overdue", "100.00")
    await setup.credit("11.90")
    await same("overdue", "88.10")
    assert (await setup.row())["credited_units"] == 11_900_000_000
    await setup.credit(None)  # void: credits all not credited yet (the 19.00 paid: credit)
    await same("void", "0.00")
    assert (await setup.row())["credited_units"] == 119 * UNIT


async def test_a_payment_in_full_turns_the_row_paid(setup: Setup) -> None:
    await setup.pay("119.00", "BT-1")
    listed = await setup.listed()
    assert listed == await setup.stored()
    assert (listed.status, listed.outstanding) == ("paid", D("0.00"))


async def test_a_redelivered_close_and_an_older_row_change_nothing(setup: Setup) -> None:
    await setup.pay("19.00", "C-1")
    block = await setup.db[INVOICE_ROWS].find_one({"_id": block_of(INVOICE_ID)})
    again = await close_invoice(setup.closing, MARKER)  # the marker redelivered
    assert again.number == NUMBER
    assert await setup.db[INVOICE_ROWS].find_one({"_id": block_of(INVOICE_ID)}) == block

    row = await setup.row()
    older = row | {"version": row["version"] - 1, "status": "finalized"}
    await InvoiceRows(setup.db).write([older])  # a late writer of an earlier state
    assert await setup.row() == row
    await InvoiceRows(setup.db).write([row])  # the same row again
    assert await setup.db[INVOICE_ROWS].find_one({"_id": block_of(INVOICE_ID)}) == block


async def test_a_crash_between_a_settlement_write_and_its_row_is_repaired_by_the_next_reader(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = setup.invoices._rows  # the crash is injected into its one writer
    write = rows.write
    crashed = False

    async def crash_once(changed: Any) -> None:
        nonlocal crashed
        if not crashed:
            crashed = True
            raise ConnectionError("process killed")
        await write(changed)

    monkeypatch.setattr(rows, "write", crash_once)
    with pytest.raises(ConnectionError):
        await setup.pay("119.00", "BT-1")  # decided (its settlement write stored), not applied
    assert (await setup.row())["status"] == "finalized"

    standing = await dues(setup.settle, NUMBER)  # reads the invoice fresh: applies the write
    assert (standing.status, standing.outstanding) == ("paid", D("0.00"))
    listed = await setup.listed()
    assert listed == await setup.stored()
    assert (listed.status, listed.outstanding) == ("paid", D("0.00"))


def issued_row(customer: str, period: str, n: int) -> dict[str, Any]:
    return {
        "_id": f"{customer}:{period}",
        "customer_id": customer,
        "period": period,
        "status": "finalized",
        "number": f"R-{n:05d}",
        "issue_date": f"{period}-01",
        "due_date": f"{period}-28",
        "currency": "EUR",
        "total_units": (n + 1) * UNIT,
        "outstanding_units": (n + 1) * UNIT,
        "credited_units": 0,
        "pdf_file_id": None,
        "version": 1,
    }


async def test_concurrent_writers_of_one_block_lose_no_row(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    rows = [issued_row("alpha", f"2024-{m:02d}", m) for m in range(1, 13)]
    rows += [issued_row("alpha", f"2025-{m:02d}", 12 + m) for m in range(1, 13)]
    assert len({block_of(r["_id"]) for r in rows}) == 1
    # a crashed writer's lock, long expired, is taken over
    await mongo_db[ROW_LOCKS].insert_one({"_id": block_of(rows[0]["_id"]), "owner": "x", "at": 0})
    first, second = InvoiceRows(mongo_db), InvoiceRows(mongo_db)  # two processes
    await asyncio.gather(
        *(writer.write([row]) for row, writer in zip(rows, [first, second] * 12, strict=True))
    )
    stored = await first.read(r["_id"] for r in rows)
    assert stored == {r["_id"]: r for r in rows}
    assert await mongo_db[ROW_LOCKS].count_documents({}) == 0


def invoice_doc(period: str, n: int) -> dict[str, Any]:
    row = issued_row("big", period, n)
    return {key: value for key, value in row.items() if key != "version"} | {
        "status": "paid" if n % 3 == 0 else "finalized",
        "document": {"number": row["number"], "currency": "EUR"},
    }


async def test_a_customers_pages_follow_the_list_order_across_blocks_from_the_rows(
    infra: Any, namespace: str
) -> None:
    recorder = CommandRecorder()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, event_listeners=[recorder], tz_aware=True
    )
    db = client[namespace]
    try:
        # 1995-07 .. 2005-06: ten years of monthly invoices over two decades' blocks
        periods = [f"{1995 + (6 + m) // 12}-{(6 + m) % 12 + 1:02d}" for m in range(120)]
        await db[INVOICES].insert_many([invoice_doc(p, n) for n, p in enumerate(periods)])
        invoices = MongoInvoiceRepository(db)
        await invoices.ensure_indexes()  # keys and rows of what was stored before them
        await invoices.ensure_indexes()  # once
        blocks = await db[INVOICE_ROWS].find({}, {"_id": 1}).to_list()
        assert sorted(str(b["_id"]) for b in blocks) == ["built", "rows:big:199", "rows:big:200"]
        await invoices.create_drafts(["big:2005-07"])  # a draft: no row, read as an invoice
        settle = SettlementPorts(
            MongoCatalogRepository(db),
            invoices,
            MongoSettlementRepository(db),
            InMemoryInvoiceEvents(),
        )
        queries = QueryPorts(invoices, settle, InMemoryInvoicePdfStore())
        newest_first = ["big:2005-07", *(f"big:{p}" for p in reversed(periods))]
        for offset, limit in ((0, 51), (51, 51), (102, 51), (50, 7), (60, 10)):
            recorder.commands.clear()
            page = await find_invoices(
                queries, Scope("big"), InvoiceFilter(), offset=offset, limit=limit
            )
            assert [i.invoice_id for i in page.items] == newest_first[offset : offset + limit]
            invoice_reads = [
                body["filter"]["_id"]
                for name, body in recorder.commands
                if name == "find" and body.get("find") == INVOICES
            ]
            assert invoice_reads == (["big:2005-07"] if offset == 0 else [])
            row_reads = [body for name, body in recorder.commands if body.get(name) == INVOICE_ROWS]
            assert 1 <= len(row_reads) <= 2
        paid = await find_invoices(
            queries, Scope("big"), InvoiceFilter(status=InvoiceStatus.PAID), offset=0, limit=5
        )
        assert [i.invoice_id for i in paid.items] == [
            f"big:{periods[n]}" for n in range(119, -1, -1) if n % 3 == 0
        ][:5]
    finally:
        await client.drop_database(namespace)
        await client.close()
