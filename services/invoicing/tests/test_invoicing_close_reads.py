"""Closing an invoice reads a bounded number of documents, whatever the number of its charges
(issue 11, want 1): the draft's sums come from its ledger, so the close of an invoice of 2,000
charges sends the same commands, and gets the same number of documents back, as the close of
one of 10, and never touches the charges collection.

The commands are recorded with PyMongo's command monitoring on the real database, from the
close marker to the invoice finalized (its PDF stored, its event published)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from invoicing_test_support import ONE_CUSTOMER_CATALOG, rated
from pymongo import AsyncMongoClient, monitoring

from billing_catalog.models import Catalog
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.invoice_repo import CHARGES, MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.domain.invoice import InvoiceDocument
from billing_invoicing.domain.model import StreamPosition
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges
from billing_invoicing.service.generate_invoices import InvoicingPorts, close_invoice
from billing_schemas.events import PeriodClose, PeriodClosing

pytestmark = pytest.mark.integration


SERVICES = ("Amazon EC2", "Amazon S3", "Amazon RDS")


class Reads(monitoring.CommandListener):
    """Every command sent (name and collection) and the documents each reply carried."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []
        self.by_request: dict[int, tuple[str, str]] = {}
        self.returned: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        what = (event.command_name, target if isinstance(target, str) else "")
        self.commands.append(what)
        self.by_request[event.request_id] = what

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        _, collection = self.by_request.pop(event.request_id, ("", ""))
        cursor = event.reply.get("cursor")
        if isinstance(cursor, dict):
            batch = cursor.get("firstBatch", cursor.get("nextBatch"))
            self.returned[collection] += len(batch) if isinstance(batch, list) else 0
        value = event.reply.get("value")  # findAndModify
        if isinstance(value, dict):
            self.returned[collection] += 1

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.by_request.pop(event.request_id, None)


class KeptRenderer:
    """Renders a stand-in PDF and keeps the documents it was given."""

    def __init__(self) -> None:
        self.documents: list[InvoiceDocument] = []

    async def render(self, invoice: InvoiceDocument) -> bytes:
        self.documents.append(invoice)
        return f"%PDF-stand-in {invoice.number} {invoice.total}".encode()


async def close_with(infra: Any, database: str, charges: int) -> tuple[Reads, InvoiceDocument]:
    """Put ``charges`` charges of 1.25 on alpha's 2024-09 draft, then close it, recording
    the commands of the close alone."""
    reads = Reads()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, event_listeners=[reads]
    )
    db = client[database]
    try:
        catalog = MongoCatalogRepository(db)
        await catalog.apply(Catalog.model_validate(ONE_CUSTOMER_CATALOG))
        invoices = MongoInvoiceRepository(db)
        await invoices.ensure_indexes()
        credits = MongoSettlementRepository(db)
        await credits.ensure_indexes()
        renderer = KeptRenderer()
        ports = InvoicingPorts(
            catalog, invoices, renderer, InvoicePdfStore(db), InMemoryInvoiceEvents(), credits
        )
        for start in range(0, charges, 500):
            batch = [
                PositionedCharge(
                    rated(f"c{n}", price="1.25", service=SERVICES[n % len(SERVICES)]),
                    StreamPosition(0, n),
                )
                for n in range(start, min(start + 500, charges))
            ]
            await add_charges(invoices, batch)
        assert await db[CHARGES].count_documents({}) == charges
        # the close starts in a fresh process (the consumer restarted): nothing kept in memory
        ports.invoices = MongoInvoiceRepository(db)
        reads.commands.clear()
        reads.returned.clear()

        marker = PeriodClose(customer_id="alpha", period="2024-09", issue_date=date(2024, 10, 1))
        outcome = await close_invoice(
            ports, PeriodClosing.create(marker, source="t", correlation_id="t")
        )

        assert outcome.action == "finalized"
        [document] = renderer.documents
        return reads, document
    finally:
        await client.drop_database(database)
        await client.close()


async def test_the_close_reads_as_much_for_2000_charges_as_for_10(
    infra: Any, namespace: str
) -> None:
    small, small_doc = await close_with(infra, f"{namespace}_10", 10)
    large, large_doc = await close_with(infra, f"{namespace}_2000", 2000)

    # the invoice is the sum of its charges, line by line
    assert large_doc.subtotal == Decimal("2500.00")
    assert small_doc.subtotal == Decimal("12.50")
    assert sorted(line.charge_count for line in large_doc.lines) == [666, 667, 667]
    # what the close sends and reads does not depend on the charges
    assert Counter(large.commands) == Counter(small.commands)
    assert large.returned == small.returned
    assert not [c for c in large.commands if c[1] == CHARGES], large.commands
    assert sum(large.returned.values()) < 40, large.returned
