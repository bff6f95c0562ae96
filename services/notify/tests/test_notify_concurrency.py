"""A batch's emails go out concurrently, at most ``send_concurrency`` at once, one customer's in
order; a refused recipient fails its own email only; once the SMTP server failed, the emails
not started yet are scheduled for retry without trying (``service/batch.py``). Run on the
in-memory broker (one batch per call) with a mailer that records what overlapped."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import pytest
from notify_test_support import notify_settings
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Address, Contact, ContactRole, Customer, PriceList
from billing_catalog.store import CUSTOMERS
from billing_notify.adapters.delivery_log import DELIVERIES
from billing_notify.adapters.memory import InMemoryInvoicePdfs
from billing_notify.app import build
from billing_notify.ports import BeforeData, SendReport, TransientMailError
from billing_notify.service.batch import run_by_key
from billing_schemas.channels import INVOICE_FINALIZED
from billing_schemas.events import FinalizedInvoice, InvoiceFinalized

if TYPE_CHECKING:
    from conftest import FlowBroker, Infra

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
AT = datetime(2024, 10, 1, 6, 30, tzinfo=UTC)
MEMORY = pytest.mark.parametrize("flow", ["memory"], indirect=True)


@dataclass
class OverlapMailer:
    """A mailer that takes ``seconds`` per email and records how many were in flight at once,
    the order of each customer's emails, and which calls it made; addresses in ``refused``
    are refused for good, and while ``down`` every call fails as a server that is down."""

    seconds: float = 0.2
    refused: frozenset[str] = frozenset()
    down: bool = False
    in_flight: int = 0
    peak: int = 0
    calls: int = 0
    sent: list[str] = field(default_factory=list)

    async def send(
        self,
        message: EmailMessage,
        *,
        sender: str,
        recipients: Sequence[str],
        before_data: BeforeData,
    ) -> SendReport:
        """See :class:`Mailer`."""
        del sender
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.seconds)
            if self.down:
                msg = "421 service not available"
                raise TransientMailError(msg)
            refused = {r: "550 no such user" for r in recipients if r in self.refused}
            accepted = tuple(r for r in recipients if r not in refused)
            if accepted:
                await before_data()
                self.sent.append(str(message["Subject"]))
            return SendReport(accepted=accepted, refused=refused, response="250 OK")
        finally:
            self.in_flight -= 1


def _customer(n: int) -> Customer:
    return Customer(
        id=f"c{n}",
        name=f"Customer {n}",
        address=Address(lines=["1 Main St", "Springfield"], country="US"),
        currency="USD",
        invoicing_entity="cumulus",
        price_list=PriceList(id="std"),
        contacts=[Contact(email=f"ap@c{n}.example", roles=[ContactRole.BILLING], primary=True)],
    )


def _event(customer: int, month: int) -> InvoiceFinalized:
    invoice = FinalizedInvoice(
        invoice_id=f"inv-{customer}-{month}",
        invoice_number=f"CUM-2024-{customer:03d}{month:03d}",
        customer_id=f"c{customer}",
        customer_name=f"Customer {customer}",
        invoicing_entity_id="cumulus",
        period=f"2024-{month:02d}",
        issue_date=date(2024, 10, 1),
        due_date=date(2024, 10, 31),
        currency="USD",
        subtotal=Decimal("100.00"),
        tax=Decimal("19.00"),
        total=Decimal("119.00"),
        outstanding=Decimal("119.00"),
        line_count=1,
        pdf_file_id="pdf",
        pdf_sha256=hashlib.sha256(PDF).hexdigest(),
    )
    return InvoiceFinalized.create(
        invoice, source="billing-invoicing", correlation_id="close", occurred_at=AT
    )


def _pdfs() -> InMemoryInvoicePdfs:
    """Invoicing's documents (the fake of its API): the one PDF every invoice names."""
    return InMemoryInvoicePdfs({"pdf": PDF})


async def _store(db: AsyncDatabase[dict[str, Any]], customers: int) -> None:
    await db[CUSTOMERS].insert_many(
        [{"_id": f"c{n}", **_customer(n).model_dump(mode="json")} for n in range(customers)]
    )


async def _statuses(db: AsyncDatabase[dict[str, Any]]) -> dict[str, tuple[str, int]]:
    return {
        d["invoice_number"]: (d["status"], d["attempts"]) async for d in db[DELIVERIES].find({})
    }


@MEMORY
async def test_a_batch_sends_up_to_the_limit_at_once_and_each_customers_emails_in_order(
    flow: FlowBroker, infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    await _store(mongo_db, 6)
    mailer = OverlapMailer()
    settings = notify_settings(infra, namespace, 1, send_concurrency=3)
    await flow.serve(build(settings, flow.publisher(), mailer, _pdfs()))
    # two invoices per customer, September's first; then the whole batch again (a redelivery)
    events = [_event(n, month) for month in (9, 10) for n in range(6)]

    await flow.publish(INVOICE_FINALIZED, events + events)
    await flow.settle()

    assert mailer.peak == 3
    assert len(mailer.sent) == 12  # each once, the redelivered copies settled by the log
    for n in range(6):
        mine = [s for s in mailer.sent if f"CUM-2024-{n:03d}" in s]
        assert [s.split()[1] for s in mine] == [f"CUM-2024-{n:03d}009", f"CUM-2024-{n:03d}010"]
    assert set((await _statuses(mongo_db)).values()) == {("sent", 1)}


@MEMORY
async def test_a_refused_recipient_in_the_middle_fails_its_email_only(
    flow: FlowBroker, infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    await _store(mongo_db, 5)
    mailer = OverlapMailer(refused=frozenset({"ap@c2.example"}))
    settings = notify_settings(infra, namespace, 1, send_concurrency=4)
    await flow.serve(build(settings, flow.publisher(), mailer, _pdfs()))

    await flow.publish(INVOICE_FINALIZED, [_event(n, 9) for n in range(5)])
    await flow.settle()

    assert mailer.peak > 1
    assert len(mailer.sent) == 4
    statuses = await _statuses(mongo_db)
    assert statuses.pop("CUM-2024-002009") == ("failed", 1)
    assert set(statuses.values()) == {("sent", 1)}


@MEMORY
async def test_once_the_server_failed_the_emails_not_started_are_deferred_untried(
    flow: FlowBroker, infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    await _store(mongo_db, 6)
    mailer = OverlapMailer(down=True)
    # a long backoff: only the consumer's own attempts reach the server
    settings = notify_settings(infra, namespace, 1, send_concurrency=2, retry_backoff_seconds=3600)
    await flow.serve(build(settings, flow.publisher(), mailer, _pdfs()))

    await flow.publish(INVOICE_FINALIZED, [_event(n, 9) for n in range(6)])
    await flow.settle()

    # the two started together tried the server; the four after them did not
    assert mailer.calls == 2
    statuses = await _statuses(mongo_db)
    assert sorted(statuses.values()) == [("retrying", 0)] * 4 + [("retrying", 1)] * 2


async def test_a_step_that_raises_stops_the_steps_not_started_and_the_error_is_raised() -> None:
    started: list[int] = []
    finished: list[int] = []

    async def step(index: int) -> None:
        started.append(index)
        await asyncio.sleep(0.05 if index != 1 else 0.01)
        if index == 1:
            msg = "the database is gone"
            raise ConnectionError(msg)
        finished.append(index)

    with pytest.raises(ConnectionError, match="database is gone"):
        await run_by_key(["a", "b", "c", "d", "e"], step, 2)

    assert started == [0, 1]  # the others never started
    assert finished == [0]  # the one in flight was not cancelled


async def test_steps_of_one_key_run_in_order_and_never_overlap() -> None:
    running: set[str] = set()
    order: list[int] = []

    async def step(index: int) -> None:
        key = keys[index]
        assert key not in running
        running.add(key)
        await asyncio.sleep(0.01)
        order.append(index)
        running.discard(key)

    keys = ["a", "b", "a", "c", "a", "b"]
    await run_by_key(keys, step, 8)

    assert sorted(order) == list(range(6))
    assert [i for i in order if keys[i] == "a"] == [0, 2, 4]
    assert [i for i in order if keys[i] == "b"] == [1, 5]
