"""Kafka side of invoicing: the events it publishes."""

from __future__ import annotations

from billing_runtime.kafka import EventPublisher
from billing_schemas.events import InvoiceFinalized, PeriodClosing
from billing_schemas.topics import Topic, topic_name


class KafkaInvoiceEvents:
    """:class:`~billing_invoicing.service.generate_invoices.EventPublishing` over Kafka."""

    def __init__(self, publisher: EventPublisher, namespace: str = "") -> None:
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
