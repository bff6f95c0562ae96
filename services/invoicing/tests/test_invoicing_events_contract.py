"""Invoicing's publishing ports, :class:`~billing_invoicing.ports.EventPublishing`,
:class:`~billing_invoicing.ports.ChargeStream` and
:class:`~billing_invoicing.ports.SettlementEvents`, one contract run against the in-memory fake
(``adapters/memory.py``) and the Kafka adapter on the real broker: each event reaches its own
stream whole, keyed by its customer, in the order published per customer; close markers and
one-off charges share the charge stream, so a charge added after a customer's marker is read
after it (what makes the close exact)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import pytest
from pydantic import BaseModel

from billing_devtools.testing import read_keyed
from billing_invoicing.adapters.events import KafkaInvoiceEvents
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents
from billing_runtime.kafka import EventPublisher, ensure_topics
from billing_schemas.channels import (
    CHARGE_RATED,
    CREDIT_NOTE_ISSUED,
    INVOICE_FINALIZED,
    INVOICE_OVERDUE,
    INVOICE_PAID,
    INVOICE_VOIDED,
    PAYMENT_RECORDED,
    Channel,
)
from billing_schemas.events import (
    ChargeCategory,
    ChargeRated,
    CreditNote,
    CreditNoteIssued,
    Envelope,
    FinalizedInvoice,
    InvoiceFinalized,
    InvoiceOverdue,
    InvoicePaid,
    InvoiceVoided,
    LineType,
    OverdueInvoice,
    PaidInvoice,
    Payment,
    PaymentRecorded,
    PeriodClose,
    PeriodClosing,
    RatedCharge,
    VoidedInvoice,
)

if TYPE_CHECKING:
    from conftest import Infra

E = TypeVar("E", bound=Envelope)
READ_WITHIN_SECONDS = 8.0
Stream = Literal["finalized", "charges", "payments", "credit_notes", "overdue", "paid", "voided"]
CHANNELS: dict[Stream, Channel[Any]] = {
    "finalized": INVOICE_FINALIZED,
    "charges": CHARGE_RATED,
    "payments": PAYMENT_RECORDED,
    "credit_notes": CREDIT_NOTE_ISSUED,
    "overdue": INVOICE_OVERDUE,
    "paid": INVOICE_PAID,
    "voided": INVOICE_VOIDED,
}


@dataclass(frozen=True)
class Published:
    """One event as a reader of its stream gets it; ``key`` None where the side keeps none."""

    key: str | None
    event: Envelope


class InvoiceEvents(Protocol):
    """The three ports at once (one adapter implements them on each side)."""

    async def invoice_finalized(self, event: InvoiceFinalized) -> None: ...
    async def period_closing(self, markers: list[PeriodClosing]) -> None: ...
    async def charge_added(self, event: ChargeRated) -> None: ...
    async def payment_recorded(self, event: PaymentRecorded) -> None: ...
    async def credit_note_issued(self, event: CreditNoteIssued) -> None: ...
    async def invoice_overdue(self, events: list[InvoiceOverdue]) -> None: ...
    async def invoice_paid(self, event: InvoicePaid) -> None: ...
    async def invoice_voided(self, event: InvoiceVoided) -> None: ...


class World(Protocol):
    """The publisher under test and a reader of each stream it publishes to."""

    @property
    def events(self) -> InvoiceEvents: ...

    async def read(self, stream: Stream, count: int) -> list[Published]:
        """Every event of the stream once ``count`` arrived, in order within a key."""
        ...


class FakeWorld:
    def __init__(self) -> None:
        self.fake = InMemoryInvoiceEvents()

    @property
    def events(self) -> InvoiceEvents:
        return self.fake

    async def read(self, stream: Stream, count: int) -> list[Published]:
        del count  # everything is there once published
        kept: dict[Stream, Sequence[Envelope]] = {
            "finalized": self.fake.finalized,
            "charges": self.fake.charge_stream,
            "payments": self.fake.payments,
            "credit_notes": self.fake.credit_notes,
            "overdue": self.fake.overdue,
            "paid": self.fake.paid,
            "voided": self.fake.voided,
        }
        return [Published(None, event) for event in kept[stream]]  # the fake keeps no keys


class KafkaWorld:
    def __init__(self, bootstrap_servers: str, namespace: str) -> None:
        self.producer = EventPublisher(bootstrap_servers, "invoicing-contract")
        self._events = KafkaInvoiceEvents(self.producer, namespace)
        self._bootstrap_servers = bootstrap_servers
        self._namespace = namespace

    @property
    def events(self) -> InvoiceEvents:
        return self._events

    async def start(self) -> None:
        names = [channel.name(self._namespace) for channel in CHANNELS.values()]
        await ensure_topics(self._bootstrap_servers, names)
        await self.producer.start()

    async def read(self, stream: Stream, count: int) -> list[Published]:
        channel = CHANNELS[stream]
        topic = channel.name(self._namespace)
        read = await read_keyed(
            self._bootstrap_servers, topic, channel.decode, count, READ_WITHIN_SECONDS
        )
        return [Published(key, event) for key, event in read]


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
async def world(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[World]:
    if request.param == "memory":
        yield FakeWorld()
        return
    infra: Infra = request.getfixturevalue("infra")  # the namespace fixture deletes the topics
    kafka = KafkaWorld(infra.kafka_bootstrap_servers, namespace)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.producer.stop()


def _create(event_type: type[E], data: BaseModel, event_id: str) -> E:
    return event_type.create(data, source="contract", correlation_id="corr-1", event_id=event_id)


def _charge(charge_id: str, customer: str, price: str = "240.00") -> ChargeRated:
    charge = RatedCharge(
        charge_id=charge_id,
        record_id=charge_id,
        customer_id=customer,
        provider="one-off",
        sub_account_id=customer,
        billing_period="2024-10",
        charge_period_start=datetime(2024, 10, 1, tzinfo=UTC),
        charge_category=ChargeCategory.ADJUSTMENT,
        line_type=LineType.OTHER,
        service_name="Support hours",
        quantity=Decimal(2),
        cost=Decimal(0),
        cost_currency="EUR",
        price=Decimal(price),
        currency="EUR",
        margin=Decimal(price),
        rule="one-off",
        price_list_id="one-off",
        price_list_version=1,
    )
    return _create(ChargeRated, charge, f"charge:{charge_id}")


def _marker(customer: str, period: str = "2024-10") -> PeriodClosing:
    close = PeriodClose(customer_id=customer, period=period, issue_date=date(2024, 11, 1))
    return _create(PeriodClosing, close, f"close:{customer}:{period}")


def _facts(customer: str, number: str) -> dict[str, Any]:
    return {
        "invoice_id": f"{customer}:2024-09",
        "invoice_number": number,
        "customer_id": customer,
        "customer_name": f"{customer.title()} GmbH",
        "currency": "EUR",
        "total": Decimal("5.33"),
    }


def _finalized(customer: str, number: str) -> InvoiceFinalized:
    invoice = FinalizedInvoice(
        **{k: v for k, v in _facts(customer, number).items() if k != "total"},
        invoicing_entity_id="cumulus-de",
        period="2024-09",
        issue_date=date(2024, 10, 1),
        due_date=date(2024, 10, 15),
        subtotal=Decimal("4.48"),
        tax=Decimal("0.85"),
        total=Decimal("5.33"),
        outstanding=Decimal("5.33"),
        line_count=3,
        pdf_file_id=f"pdf-{number}",
        pdf_sha256="b" * 64,
    )
    return _create(InvoiceFinalized, invoice, f"finalized:{number}")


def _payment(customer: str, number: str, payment_id: str, amount: str) -> PaymentRecorded:
    payment = Payment(
        payment_id=payment_id,
        invoice_id=f"{customer}:2024-09",
        invoice_number=number,
        customer_id=customer,
        amount=Decimal(amount),
        currency="EUR",
        method="bank_transfer",
        reference=f"ref {payment_id}",
        paid_on=date(2024, 10, 5),
        outstanding_after=Decimal("5.33") - Decimal(amount),
    )
    return _create(PaymentRecorded, payment, payment_id)


def _credit_note(customer: str, number: str) -> CreditNoteIssued:
    note = CreditNote(
        credit_note_id=f"cn-{number}",
        credit_note_number=f"CN-{number}",
        invoice_id=f"{customer}:2024-09",
        invoice_number=number,
        customer_id=customer,
        customer_name=f"{customer.title()} GmbH",
        issue_date=date(2024, 10, 6),
        currency="EUR",
        total=Decimal("1.00"),
        reason="Goodwill: 1 € off",
    )
    return _create(CreditNoteIssued, note, f"cn-{number}")


def _overdue(customer: str, number: str) -> InvoiceOverdue:
    overdue = OverdueInvoice(
        **_facts(customer, number),
        outstanding=Decimal("5.33"),
        due_date=date(2024, 10, 15),
        as_of=date(2024, 10, 20),
        days_overdue=5,
    )
    return _create(InvoiceOverdue, overdue, f"overdue:{number}")


def _paid(customer: str, number: str) -> InvoicePaid:
    paid = PaidInvoice(
        **_facts(customer, number),
        paid=Decimal("105.33"),
        credited=Decimal(0),
        settled_by="p-1",
    )
    return _create(InvoicePaid, paid, f"invoice-paid:{customer}:2024-09")


def _voided(customer: str, number: str) -> InvoiceVoided:
    voided = VoidedInvoice(
        **_facts(customer, number),
        credit_note_id=f"cn-{number}",
        credit_note_number=f"CN-{number}",
        voided_on=date(2024, 10, 7),
        reason="Issued twice",
    )
    return _create(InvoiceVoided, voided, f"invoice-voided:{customer}:2024-09")


def _customer_of(event: Envelope) -> str:
    customer: str = getattr(event, "data").customer_id  # noqa: B009 - every event here has one
    return customer


def _by_customer(reads: Sequence[Published]) -> dict[str, list[Envelope]]:
    events: dict[str, list[Envelope]] = {}
    for read in reads:
        assert read.key in (None, _customer_of(read.event))  # where the side keys (Kafka)
        events.setdefault(_customer_of(read.event), []).append(read.event)
    return events


async def test_each_event_arrives_whole_on_its_own_stream(world: World) -> None:
    finalized = _finalized("acme", "CUM-2024-0001")
    payment = _payment("acme", "CUM-2024-0001", "p-1", "105.33")
    note = _credit_note("acme", "CUM-2024-0001")
    overdue = [_overdue("acme", "CUM-2024-0001"), _overdue("globex", "CUM-2024-0002")]
    paid = _paid("acme", "CUM-2024-0001")
    voided = _voided("globex", "CUM-2024-0002")
    charge = _charge("support-1", "acme")

    await world.events.invoice_finalized(finalized)
    await world.events.payment_recorded(payment)
    await world.events.credit_note_issued(note)
    await world.events.invoice_overdue(overdue)
    await world.events.invoice_paid(paid)
    await world.events.invoice_voided(voided)
    await world.events.charge_added(charge)

    assert _by_customer(await world.read("finalized", 1)) == {"acme": [finalized]}
    assert _by_customer(await world.read("payments", 1)) == {"acme": [payment]}
    assert _by_customer(await world.read("credit_notes", 1)) == {"acme": [note]}
    assert _by_customer(await world.read("overdue", 2)) == {
        "acme": [overdue[0]],
        "globex": [overdue[1]],
    }
    assert _by_customer(await world.read("paid", 1)) == {"acme": [paid]}
    assert _by_customer(await world.read("voided", 1)) == {"globex": [voided]}
    assert _by_customer(await world.read("charges", 1)) == {"acme": [charge]}


async def test_markers_and_one_off_charges_share_the_charge_stream_in_order(
    world: World,
) -> None:
    before = _charge("support-1", "acme")
    markers = [_marker("acme"), _marker("globex")]
    after = _charge("support-2", "acme", "120.00")

    await world.events.charge_added(before)
    await world.events.period_closing(markers)
    await world.events.charge_added(after)
    reads = await world.read("charges", 4)

    # the close reads acme's stream: what came before the marker is on the closed invoice
    assert _by_customer(reads) == {"acme": [before, markers[0], after], "globex": [markers[1]]}


async def test_payments_of_one_customer_stay_in_order(world: World) -> None:
    payments = [
        _payment("acme", "CUM-2024-0001", "p-1", "1.00"),
        _payment("globex", "CUM-2024-0002", "p-2", "2.00"),
        _payment("acme", "CUM-2024-0001", "p-3", "4.33"),
    ]

    for payment in payments:
        await world.events.payment_recorded(payment)
    reads = await world.read("payments", 3)

    assert _by_customer(reads) == {"acme": [payments[0], payments[2]], "globex": [payments[1]]}


async def test_empty_lists_publish_nothing(world: World) -> None:
    await world.events.period_closing([])
    await world.events.invoice_overdue([])
    charge = _charge("after", "acme")
    overdue = _overdue("acme", "CUM-2024-0001")
    await world.events.charge_added(charge)  # something to wait for, on each stream
    await world.events.invoice_overdue([overdue])

    assert [r.event for r in await world.read("charges", 1)] == [charge]
    assert [r.event for r in await world.read("overdue", 1)] == [overdue]
