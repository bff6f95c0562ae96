"""Kafka side of invoicing: the events it publishes."""

from __future__ import annotations

from billing_runtime.kafka import Publisher
from billing_schemas.events import (
    ChargeRated,
    CreditNoteIssued,
    InvoiceFinalized,
    InvoiceOverdue,
    InvoicePaid,
    InvoiceVoided,
    PaymentRecorded,
    PeriodClosing,
)
from billing_schemas.topics import Topic, topic_name


class KafkaInvoiceEvents:
    """:class:`~billing_invoicing.service.generate_invoices.EventPublishing` and
    :class:`~billing_invoicing.service.settle_invoices.SettlementEvents` over Kafka; every event
    keyed by customer, so that one customer's invoice, payments and notes stay in order."""

    def __init__(self, publisher: Publisher, namespace: str = "") -> None:
        self._publisher = publisher
        self._ns = namespace

    async def invoice_finalized(self, event: InvoiceFinalized) -> None:
        """Publish keyed by customer, so one customer's invoices stay in order."""
        await self._publisher.publish(
            topic_name(Topic.INVOICE_FINALIZED, self._ns),
            [(event.data.customer_id, event)],
        )

    async def period_closing(self, markers: list[PeriodClosing]) -> None:
        """Into the charge stream, keyed by customer like the charges they follow."""
        await self._publisher.publish(
            topic_name(Topic.CHARGE_RATED, self._ns),
            [(m.data.customer_id, m) for m in markers],
        )

    async def charge_added(self, event: ChargeRated) -> None:
        """A one-off charge into the charge stream, keyed by customer like rated charges."""
        await self._publisher.publish(
            topic_name(Topic.CHARGE_RATED, self._ns), [(event.data.customer_id, event)]
        )

    async def payment_recorded(self, event: PaymentRecorded) -> None:
        """Publish keyed by customer."""
        await self._publisher.publish(
            topic_name(Topic.PAYMENT_RECORDED, self._ns), [(event.data.customer_id, event)]
        )

    async def credit_note_issued(self, event: CreditNoteIssued) -> None:
        """Publish keyed by customer."""
        await self._publisher.publish(
            topic_name(Topic.CREDIT_NOTE_ISSUED, self._ns), [(event.data.customer_id, event)]
        )

    async def invoice_overdue(self, events: list[InvoiceOverdue]) -> None:
        """Publish keyed by customer."""
        await self._publisher.publish(
            topic_name(Topic.INVOICE_OVERDUE, self._ns), [(e.data.customer_id, e) for e in events]
        )

    async def invoice_paid(self, event: InvoicePaid) -> None:
        """Publish keyed by customer."""
        await self._publisher.publish(
            topic_name(Topic.INVOICE_PAID, self._ns), [(event.data.customer_id, event)]
        )

    async def invoice_voided(self, event: InvoiceVoided) -> None:
        """Publish keyed by customer."""
        await self._publisher.publish(
            topic_name(Topic.INVOICE_VOIDED, self._ns), [(event.data.customer_id, event)]
        )


class InMemoryInvoiceEvents:
    """Fake of the same ports for tests: keeps what would be published, per kind."""

    def __init__(self) -> None:
        self.finalized: list[InvoiceFinalized] = []
        self.markers: list[PeriodClosing] = []
        self.charges: list[ChargeRated] = []
        self.payments: list[PaymentRecorded] = []
        self.credit_notes: list[CreditNoteIssued] = []
        self.overdue: list[InvoiceOverdue] = []
        self.paid: list[InvoicePaid] = []
        self.voided: list[InvoiceVoided] = []

    async def invoice_finalized(self, event: InvoiceFinalized) -> None:
        self.finalized.append(event)

    async def period_closing(self, markers: list[PeriodClosing]) -> None:
        self.markers += markers

    async def charge_added(self, event: ChargeRated) -> None:
        self.charges.append(event)

    async def payment_recorded(self, event: PaymentRecorded) -> None:
        self.payments.append(event)

    async def credit_note_issued(self, event: CreditNoteIssued) -> None:
        self.credit_notes.append(event)

    async def invoice_overdue(self, events: list[InvoiceOverdue]) -> None:
        self.overdue += events

    async def invoice_paid(self, event: InvoicePaid) -> None:
        self.paid.append(event)

    async def invoice_voided(self, event: InvoiceVoided) -> None:
        self.voided.append(event)
