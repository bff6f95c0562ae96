"""Kafka side of invoicing: the events it publishes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from billing_runtime.kafka import Publisher
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
    ChargeRated,
    CreditNoteIssued,
    Envelope,
    InvoiceFinalized,
    InvoiceOverdue,
    InvoicePaid,
    InvoiceVoided,
    PaymentRecorded,
    PeriodClosing,
)

E = TypeVar("E", bound=Envelope)


class KafkaInvoiceEvents:
    """:class:`~billing_invoicing.service.generate_invoices.EventPublishing` and
    :class:`~billing_invoicing.service.settle_invoices.SettlementEvents` over Kafka; every event
    keyed by customer, so that one customer's invoice, payments and notes stay in order."""

    def __init__(self, publisher: Publisher, namespace: str = "") -> None:
        self._publisher = publisher
        self._ns = namespace

    async def _publish(self, channel: Channel[E], events: Sequence[E]) -> None:
        # the channel keys each event (by customer) and refuses one it does not carry
        await self._publisher.publish(channel.name(self._ns), channel.keyed(events))

    async def invoice_finalized(self, event: InvoiceFinalized) -> None:
        """Publish keyed by customer, so one customer's invoices stay in order."""
        await self._publish(INVOICE_FINALIZED, [event])

    async def period_closing(self, markers: list[PeriodClosing]) -> None:
        """Into the charge stream, keyed by customer like the charges they follow."""
        await self._publish(CHARGE_RATED, markers)

    async def charge_added(self, event: ChargeRated) -> None:
        """A one-off charge into the charge stream, keyed by customer like rated charges."""
        await self._publish(CHARGE_RATED, [event])

    async def payment_recorded(self, event: PaymentRecorded) -> None:
        """Publish keyed by customer."""
        await self._publish(PAYMENT_RECORDED, [event])

    async def credit_note_issued(self, event: CreditNoteIssued) -> None:
        """Publish keyed by customer."""
        await self._publish(CREDIT_NOTE_ISSUED, [event])

    async def invoice_overdue(self, events: list[InvoiceOverdue]) -> None:
        """Publish keyed by customer."""
        await self._publish(INVOICE_OVERDUE, events)

    async def invoice_paid(self, event: InvoicePaid) -> None:
        """Publish keyed by customer."""
        await self._publish(INVOICE_PAID, [event])

    async def invoice_voided(self, event: InvoiceVoided) -> None:
        """Publish keyed by customer."""
        await self._publish(INVOICE_VOIDED, [event])
