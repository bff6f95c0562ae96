"""Closing a run of close markers together (issue 11, point 3), on the real database.

The consumer freezes the invoices of a run of markers together: the catalog read once, the
numbers claimed one by one in stream order, the frozen invoices written concurrently and each
draft ledger once; each invoice is then issued as soon as its rendering is back. These tests hold
the invariants that batching must not break: numbers gapless and in stream order, each invoice
issued once under redelivery and after a crash at any write, a refused marker leaving its draft
whole while the other invoices of its ledger close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from invoicing_test_support import rated
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Catalog
from billing_catalog.store import PLANS, TAX_RATES
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.invoice_repo import NUMBERS, MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents
from billing_invoicing.domain.invoice import InvoiceDocument, InvoiceStatus
from billing_invoicing.domain.model import Invoice, ledger_of
from billing_invoicing.entrypoints.consumers import apply_charge_stream
from billing_invoicing.service.generate_invoices import InvoicingPorts
from billing_schemas.documents import INVOICE_PDF_FILES
from billing_schemas.events import ChargeRated, PeriodClose, PeriodClosing

pytestmark = pytest.mark.integration

# c16, c21 and c40 share draft ledger 0; c1 is in ledger 1, c6 in ledger 2
CUSTOMERS = ["c21", "c1", "c16", "c6", "c40"]
"""In the order of their close markers."""


def _customer(customer_id: str) -> dict[str, Any]:
    return {
        "id": customer_id,
        "name": customer_id,
        "address": {"lines": ["Weg 1"], "country": "DE"},
        "currency": "EUR",
        "invoicing_entity": "seller",
        "price_list": "p",
    }


CATALOG = {
    "invoicing_entities": [
        {
            "id": "seller",
            "name": "Seller GmbH",
            "address": {"lines": ["Strasse 1"], "country": "DE"},
            "number_prefix": "S-",
            "email": "billing@seller.example",
        }
    ],
    "price_lists": [{"id": "p", "versions": [{"version": 1, "effective_from": "2024-01-01"}]}],
    "tax_rates": [{"country": "DE", "percent": "19", "effective_from": "2020-01-01"}],
    "customers": [_customer(c) for c in [*CUSTOMERS, "c68"]],
}


@dataclass(frozen=True)
class Record:
    """Where a message was read from (what the consumer takes of a Kafka record)."""

    partition: int
    offset: int
    headers: tuple[tuple[str, bytes], ...] = ()


class Renderer:
    async def render(self, invoice: InvoiceDocument) -> bytes:
        return f"%PDF-stand-in {invoice.number} {invoice.total}".encode()


class CrashingRepository(MongoInvoiceRepository):
    """Fails its ``crash_at``-th invoice write, as a lost database connection would."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], crash_at: int) -> None:
        super().__init__(db)
        self.saves = 0
        self.crash_at = crash_at

    async def save(self, invoice: Invoice) -> None:
        self.saves += 1
        if self.saves == self.crash_at:
            msg = "the database went away"
            raise ConnectionError(msg)
        await super().save(invoice)


def charge(record: Record, customer_id: str, price: str) -> tuple[Any, ChargeRated]:
    event = ChargeRated.create(
        rated(f"{customer_id}-{record.offset}", customer_id, price=price),
        source="t",
        correlation_id="t",
    )
    return record, event


def marker(record: Record, customer_id: str) -> tuple[Any, PeriodClosing]:
    close = PeriodClose(customer_id=customer_id, period="2024-09", issue_date=date(2024, 10, 1))
    return record, PeriodClosing.create(close, source="t", correlation_id="t")


def stream() -> list[tuple[Any, ChargeRated | PeriodClosing]]:
    """A charge for each customer (10.00 for the first, 20.00 for the second...), then the
    close markers in the order of ``CUSTOMERS``."""
    events: list[tuple[Any, ChargeRated | PeriodClosing]] = [
        charge(Record(0, n), c, f"{10 * (n + 1)}.00") for n, c in enumerate(CUSTOMERS)
    ]
    offset = len(events)
    events += [marker(Record(0, offset + n), c) for n, c in enumerate(CUSTOMERS)]
    return events


@pytest.fixture
async def catalog(mongo_db: AsyncDatabase[dict[str, Any]]) -> MongoCatalogRepository:
    repository = MongoCatalogRepository(mongo_db)
    await repository.apply(Catalog.model_validate(CATALOG))
    await MongoInvoiceRepository(mongo_db).ensure_indexes()  # as the service does at start
    return repository


def ports_over(
    db: AsyncDatabase[dict[str, Any]],
    catalog: MongoCatalogRepository,
    invoices: MongoInvoiceRepository,
    events: InMemoryInvoiceEvents,
) -> InvoicingPorts:
    return InvoicingPorts(catalog, invoices, Renderer(), InvoicePdfStore(db), events)


async def issued(db: AsyncDatabase[dict[str, Any]]) -> dict[str, tuple[str, Decimal]]:
    """Number and total of every finalized invoice, by customer."""
    result = {}
    async for doc in db["invoicing_invoices"].find({"status": InvoiceStatus.FINALIZED.value}):
        result[doc["customer_id"]] = (doc["number"], Decimal(doc["document"]["total"]))
    return result


EXPECTED = {
    c: (f"S-2024-{n + 1:06d}", Decimal(f"{10 * (CUSTOMERS.index(c) + 1)}.00") * Decimal("1.19"))
    for n, c in enumerate(CUSTOMERS)
}
"""Numbered in the order of the markers; each total its charge plus 19 % VAT."""


async def test_a_run_of_markers_is_numbered_in_stream_order_and_issued_once(
    mongo_db: AsyncDatabase[dict[str, Any]], catalog: MongoCatalogRepository
) -> None:
    events = InMemoryInvoiceEvents()
    ports = ports_over(mongo_db, catalog, MongoInvoiceRepository(mongo_db), events)

    failed, done = await apply_charge_stream(ports, stream())
    again_failed, again = await apply_charge_stream(ports, stream())  # redelivered

    assert failed == again_failed == []
    assert [(o.customer_id, o.number, o.action) for o in done] == [
        (c, EXPECTED[c][0], "finalized") for c in CUSTOMERS
    ]
    assert {o.action for o in again} == {"already finalized"}
    assert await issued(mongo_db) == EXPECTED
    assert sorted((e.data.customer_id, e.data.invoice_number) for e in events.finalized) == sorted(
        (c, number) for c, (number, _) in EXPECTED.items()
    )
    assert await mongo_db[NUMBERS].count_documents({}) == len(CUSTOMERS)
    assert await mongo_db[INVOICE_PDF_FILES].count_documents({}) == len(CUSTOMERS)


@pytest.mark.parametrize(
    "crash_at",
    [
        2,  # while the frozen invoices are written
        len(CUSTOMERS) + 2,  # while the rendered ones are issued
    ],
)
async def test_a_crash_in_a_run_loses_no_number_and_issues_each_invoice_once(
    mongo_db: AsyncDatabase[dict[str, Any]], catalog: MongoCatalogRepository, crash_at: int
) -> None:
    events = InMemoryInvoiceEvents()
    crashing = ports_over(mongo_db, catalog, CrashingRepository(mongo_db, crash_at), events)
    with pytest.raises(ConnectionError):
        await apply_charge_stream(crashing, stream())

    # the batch comes again, to a restarted consumer (nothing kept in memory)
    restarted = ports_over(mongo_db, catalog, MongoInvoiceRepository(mongo_db), events)
    failed, _ = await apply_charge_stream(restarted, stream())

    assert failed == []
    assert await issued(mongo_db) == EXPECTED
    assert await mongo_db[NUMBERS].count_documents({}) == len(CUSTOMERS)  # no number lost
    announced = {(e.data.customer_id, e.data.invoice_number) for e in events.finalized}
    assert announced == {(c, number) for c, (number, _) in EXPECTED.items()}


async def test_a_refused_marker_keeps_its_draft_whole_and_the_rest_of_its_ledger_closes(
    mongo_db: AsyncDatabase[dict[str, Any]], catalog: MongoCatalogRepository
) -> None:
    assert ledger_of("c68") == ledger_of("c16")
    in_usd = rated("c68-usd", "c68", price="5.00").model_copy(
        update={"currency": "USD", "cost_currency": "USD"}
    )
    events: list[tuple[Any, ChargeRated | PeriodClosing]] = [
        (Record(0, 0), ChargeRated.create(in_usd, source="t", correlation_id="t")),
        charge(Record(0, 1), "c16", "10.00"),
        marker(Record(0, 2), "c68"),
        marker(Record(0, 3), "c16"),
    ]
    ports = ports_over(mongo_db, catalog, MongoInvoiceRepository(mongo_db), InMemoryInvoiceEvents())

    failed, done = await apply_charge_stream(ports, events)

    assert [f.record for f in failed] == [Record(0, 2)]
    assert "c68-usd" in failed[0].error
    assert [(o.customer_id, o.action) for o in done] == [("c16", "finalized")]
    fresh = MongoInvoiceRepository(mongo_db)  # what is stored, not what one process kept
    refused = await fresh.get("c68:2024-09")
    assert refused is not None
    assert refused.is_draft
    sums = await fresh.draft_sums("c68:2024-09")
    assert sums is not None
    [line] = sums.lines.values()
    assert (line.charge_count, line.price) == (1, Decimal("5.00"))


class CatalogReads(monitoring.CommandListener):
    """Counts the reads of the plans and the tax rates."""

    def __init__(self) -> None:
        self.reads: dict[str, int] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        collection = event.command.get("find")
        if collection in (PLANS, TAX_RATES):
            self.reads[collection] = self.reads.get(collection, 0) + 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        del event

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        del event


@pytest.fixture
async def recorded(infra: Any, namespace: str) -> AsyncIterator[tuple[Any, CatalogReads]]:
    reads = CatalogReads()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, event_listeners=[reads]
    )
    try:
        yield client[namespace], reads
        await client.drop_database(namespace)
    finally:
        await client.close()


async def test_the_catalog_is_read_once_per_run_of_markers(
    recorded: tuple[AsyncDatabase[dict[str, Any]], CatalogReads],
) -> None:
    db, reads = recorded
    catalog = MongoCatalogRepository(db)
    await catalog.apply(Catalog.model_validate(CATALOG))
    await MongoInvoiceRepository(db).ensure_indexes()
    ports = ports_over(db, catalog, MongoInvoiceRepository(db), InMemoryInvoiceEvents())
    reads.reads.clear()

    _, done = await apply_charge_stream(ports, stream())

    assert len(done) == len(CUSTOMERS)
    assert reads.reads == {PLANS: 1, TAX_RATES: 1}  # not one of each per invoice
