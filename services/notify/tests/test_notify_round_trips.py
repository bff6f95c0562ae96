"""How many database round trips one invoice email costs, counted on the real database with a
PyMongo command listener: the close waits on them (FerretDB over PostgreSQL answers a write in
20-250 ms under load), so a new one on this path must be a choice, not an accident. (The PDF is
not one of them: it is read from invoicing's API, here its fake, once per email.)"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from billing_catalog.models import (
    Address,
    Contact,
    ContactRole,
    Customer,
    InvoicingEntity,
    PriceList,
)
from billing_catalog.store import CUSTOMERS, INVOICING_ENTITIES
from billing_notify.adapters.memory import InMemoryInvoicePdfs, InMemoryMailer
from billing_notify.bootstrap import build_ports
from billing_notify.domain.recipients import parse_mailbox
from billing_notify.service.batch import cached_per_batch
from billing_notify.service.deliver import MailPolicy, Result
from billing_notify.service.notify_invoice import notify_invoice_finalized
from billing_notify.settings import NotifySettings
from billing_schemas.events import FinalizedInvoice, InvoiceFinalized

if TYPE_CHECKING:
    from conftest import Infra

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 200 + b"\n%%EOF\n"
ENTITY = InvoicingEntity(
    id="cumulus",
    name="Cumulus Cloud GmbH",
    address=Address(lines=["Wolkenweg 1", "Berlin"], country="DE"),
    number_prefix="CUM-",
    email="billing@cumulus.example",
)
POLICY = MailPolicy(sender=parse_mailbox("Billing <billing@example.com>"))


def _customer(n: int) -> Customer:
    return Customer(
        id=f"c{n}",
        name=f"Customer {n}",
        address=Address(lines=["1 Main St", "Springfield"], country="US"),
        currency="USD",
        invoicing_entity=ENTITY.id,
        price_list=PriceList(id="std"),
        contacts=[Contact(email=f"ap@c{n}.example", roles=[ContactRole.BILLING], primary=True)],
    )


def _event(n: int) -> InvoiceFinalized:
    invoice = FinalizedInvoice(
        invoice_id=f"inv-{n}",
        invoice_number=f"CUM-2024-{n:06d}",
        customer_id=f"c{n}",
        customer_name=f"Customer {n}",
        invoicing_entity_id=ENTITY.id,
        period="2024-09",
        issue_date=date(2024, 10, 1),
        due_date=date(2024, 10, 31),
        currency="USD",
        subtotal=Decimal("100.00"),
        tax=Decimal("19.00"),
        total=Decimal("119.00"),
        outstanding=Decimal("119.00"),
        line_count=1,
        pdf_file_id=f"pdf-{n}",
        pdf_sha256=hashlib.sha256(PDF).hexdigest(),
    )
    return InvoiceFinalized.create(
        invoice,
        source="billing-invoicing",
        correlation_id="close",
        occurred_at=datetime(2024, 10, 1, 6, 30, tzinfo=UTC),
    )


class Commands(monitoring.CommandListener):
    """The commands sent on the test's database, by name, and their total time."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.names: Counter[str] = Counter()
        self.seconds = 0.0
        self.by_name: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.database:
            self.names[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.database_name == self.database:
            self.seconds += event.duration_micros / 1e6
            self.by_name[event.command_name] += event.duration_micros // 1000

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class CountedPdfs(InMemoryInvoicePdfs):
    """Invoicing's documents (the fake of its API), recording what is read."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(files)
        self.loads: list[str] = []

    async def load(self, file_id: str) -> bytes:
        self.loads.append(file_id)
        return await super().load(file_id)


async def test_an_invoice_email_costs_five_round_trips_and_a_batch_reads_its_entity_once(
    infra: Infra, namespace: str
) -> None:
    listener = Commands(namespace)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, event_listeners=[listener]
    )
    try:
        db = client[namespace]
        emails = 4
        await db[INVOICING_ENTITIES].insert_one(
            {"_id": ENTITY.id, **ENTITY.model_dump(mode="json")}
        )
        for n in range(emails):
            customer = _customer(n)
            await db[CUSTOMERS].insert_one({"_id": customer.id, **customer.model_dump(mode="json")})
        pdfs = CountedPdfs({f"pdf-{n}": PDF for n in range(emails)})
        mailer = InMemoryMailer()
        ports = build_ports(db, NotifySettings(), mailer, pdfs)
        batch = cached_per_batch(ports)
        listener.names.clear()
        listener.seconds = 0.0
        listener.by_name.clear()
        started = time.perf_counter()
        for n in range(emails):
            outcome = await notify_invoice_finalized(_event(n), batch, POLICY)
            assert outcome.result is Result.SENT
        elapsed = time.perf_counter() - started
        counted = Counter(listener.names)
        print(  # the figures, for `pytest -s`
            f"\n{emails} emails: {dict(listener.names)}; {listener.seconds / emails * 1000:.1f} ms "
            f"in the database and {elapsed / emails * 1000:.1f} ms in all per email; "
            f"ms by command: {dict(listener.by_name)}"
        )
    finally:
        await client.drop_database(namespace)
        await client.close()

    assert len(mailer.sent) == emails
    # per email: the log read, the customer, the claim (insert), sending, sent; the invoicing
    # entity once for the whole batch; the PDF once per email, from invoicing's API
    assert counted == Counter(
        {"find": 2 * emails + 1, "insert": emails, "findAndModify": 2 * emails}
    )
    assert pdfs.loads == [f"pdf-{n}" for n in range(emails)]
