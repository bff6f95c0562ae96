"""Kafka entrypoint: the pipeline's invoice, payment, credit-note and bill events in, queued
deliveries out. One consumer group reads the seven topics together (so that the events of one
invoice, published on several topics, arrive about together); each batch is decoded, turned
into messages and queued in one write, then committed. A message that does not validate is
dead-lettered to its own topic's ``.dlq``; the database not answering redelivers the batch.
Sending happens in the dispatcher (``entrypoints/dispatcher.py``), never here.
"""

from __future__ import annotations

from typing import Annotated, Any

from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from pydantic import Field, TypeAdapter

from billing_runtime.kafka import decode_batch, raw_batch_decoder
from billing_runtime.observability import correlated
from billing_runtime.service import Runtime, declare_output
from billing_schemas.events import (
    AuditRecorded,
    BillProcessed,
    CreditNoteIssued,
    InvoiceFinalized,
    InvoiceOverdue,
    InvoicePaid,
    InvoiceVoided,
    PaymentRecorded,
)
from billing_schemas.topics import Topic, dead_letter_name, topic_name
from billing_webhooks.domain.audit import record_of
from billing_webhooks.domain.messages import WebhookSource, message_for
from billing_webhooks.service.audit import AuditLog, keep
from billing_webhooks.service.deliver import DeliveryPolicy, WebhookPorts, enqueue
from billing_webhooks.settings import WebhooksSettings

SOURCES: dict[Topic, type[Any]] = {
    Topic.INVOICE_FINALIZED: InvoiceFinalized,
    Topic.INVOICE_PAID: InvoicePaid,
    Topic.INVOICE_VOIDED: InvoiceVoided,
    Topic.INVOICE_OVERDUE: InvoiceOverdue,
    Topic.CREDIT_NOTE_ISSUED: CreditNoteIssued,
    Topic.PAYMENT_RECORDED: PaymentRecorded,
    Topic.BILL_PROCESSED: BillProcessed,
}
"""The topics webhooks consumes, and the event each carries."""

SOURCE_EVENTS: TypeAdapter[WebhookSource] = TypeAdapter(
    Annotated[WebhookSource, Field(discriminator="event_type")]
)
TITLE = "webhooks-events"


def register(
    runtime: Runtime, settings: WebhooksSettings, ports: WebhookPorts, policy: DeliveryPolicy
) -> None:
    """Subscribe the one consumer group to every source topic."""
    ns = settings.topic_namespace
    sources = [topic_name(topic, ns) for topic in SOURCES]
    runtime.topics += sources
    for topic, event_type in SOURCES.items():
        runtime.consumes[f"{TITLE}:{topic.value}"] = event_type
        declare_output(
            runtime,
            dead_letter_name(topic, ns),
            bytes,
            f"{event_type.__name__} events webhooks could not read: original bytes, error in "
            "x-error.",
        )

    @runtime.broker.subscriber(
        *sources,
        group_id=f"{ns}{settings.consumer_group}",
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_batch_decoder,
        title=TITLE,
        description="Invoice, payment, credit-note and bill events, queued as signed webhook "
        "deliveries for every endpoint subscribed to them.",
    )
    async def on_events(body: list[bytes], msg: KafkaMessage) -> None:
        del body  # the raw records carry the same bytes plus offsets for dead letters
        records: Any = msg.raw_message
        batch = decode_batch(records, SOURCE_EVENTS)
        messages = [message_for(event) for _, event in batch.events]
        with correlated(event.correlation_id for _, event in batch.events):
            queued = await enqueue(ports, messages, policy)
        await runtime.dead_letters.send(batch.failed)
        runtime.metrics.outcomes.labels("webhooks", "delivery_queued").inc(len(queued))
        for record in records:
            runtime.metrics.processed.labels("webhooks", record.topic).inc()


AUDIT_TITLE = "webhooks-audit"


def register_audit(runtime: Runtime, settings: WebhooksSettings, log: AuditLog) -> None:
    """Keep the audit trail: its own consumer group, so that webhook deliveries and the trail
    never hold each other up. Each batch is stored in one insert, then committed."""
    ns = settings.topic_namespace
    source = topic_name(Topic.AUDIT_RECORDED, ns)
    runtime.topics.append(source)
    runtime.consumes[AUDIT_TITLE] = AuditRecorded
    declare_output(
        runtime,
        dead_letter_name(Topic.AUDIT_RECORDED, ns),
        bytes,
        "Audit events that could not be read: original bytes, error in x-error.",
    )

    @runtime.batch_subscriber(
        source,
        group=f"{settings.consumer_group}-audit",
        title=AUDIT_TITLE,
        description="Every action that changed money or access, kept append-only in audit_log.",
    )
    async def on_audit(body: list[bytes], msg: KafkaMessage) -> None:
        del body
        records: Any = msg.raw_message
        batch = decode_batch(records, AuditRecorded)
        kept = await keep(log, [record_of(event) for _, event in batch.events])
        await runtime.dead_letters.send(batch.failed)
        runtime.metrics.outcomes.labels("webhooks", "audit_recorded").inc(kept)
        runtime.metrics.processed.labels("webhooks", source).inc(len(records))
