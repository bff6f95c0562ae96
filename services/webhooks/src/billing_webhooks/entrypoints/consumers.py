"""Kafka entrypoint: the pipeline's invoice, payment, credit-note and bill events in, queued
deliveries out. One consumer group reads the seven topics together (so that the events of one
invoice, published on several topics, arrive about together); each batch is decoded, turned
into messages and queued in one write, then committed. A message that does not validate is
dead-lettered to its own topic's ``.dlq``; the database not answering redelivers the batch.
Sending happens in the dispatcher (``entrypoints/dispatcher.py``), never here.
"""

from __future__ import annotations

from typing import Any

from billing_runtime.consumer import Message
from billing_runtime.kafka import Failed
from billing_runtime.service import Runtime
from billing_schemas.channels import (
    AUDIT_RECORDED,
    BILL_PROCESSED,
    CREDIT_NOTE_ISSUED,
    INVOICE_FINALIZED,
    INVOICE_OVERDUE,
    INVOICE_PAID,
    INVOICE_VOIDED,
    PAYMENT_RECORDED,
    WEBHOOKS,
    WEBHOOKS_AUDIT,
    Channel,
)
from billing_schemas.events import AuditRecorded
from billing_webhooks.domain.audit import record_of
from billing_webhooks.domain.messages import WebhookSource, message_for
from billing_webhooks.ports import AuditLog
from billing_webhooks.service.audit import keep
from billing_webhooks.service.deliver import DeliveryPolicy, WebhookPorts, enqueue
from billing_webhooks.settings import WebhooksSettings

SOURCES: tuple[Channel[Any], ...] = (
    INVOICE_FINALIZED,
    INVOICE_PAID,
    INVOICE_VOIDED,
    INVOICE_OVERDUE,
    CREDIT_NOTE_ISSUED,
    PAYMENT_RECORDED,
    BILL_PROCESSED,
)
"""The channels webhooks consumes."""

TITLE = "webhooks-events"


def register(
    runtime: Runtime, settings: WebhooksSettings, ports: WebhookPorts, policy: DeliveryPolicy
) -> None:
    """Subscribe the one consumer group to every source topic."""
    del settings  # the group's name and the namespace come with the runtime's settings

    @runtime.consumer(
        *SOURCES,
        group=WEBHOOKS,
        title=TITLE,
        description="Invoice, payment, credit-note and bill events, queued as signed webhook "
        "deliveries for every endpoint subscribed to them.",
    )
    async def on_events(messages: list[Message[WebhookSource]]) -> list[Failed]:
        queued = await enqueue(ports, [message_for(m.event) for m in messages], policy)
        runtime.metrics.outcomes.labels("webhooks", "delivery_queued").inc(len(queued))
        return []


AUDIT_TITLE = "webhooks-audit"


def register_audit(runtime: Runtime, settings: WebhooksSettings, log: AuditLog) -> None:
    """Keep the audit trail: its own consumer group, so that webhook deliveries and the trail
    never hold each other up. Each batch is stored in one insert, then committed."""
    del settings

    @runtime.consumer(
        AUDIT_RECORDED,
        group=WEBHOOKS_AUDIT,
        title=AUDIT_TITLE,
        description="Every action that changed money or access, kept append-only in audit_log.",
    )
    async def on_audit(messages: list[Message[AuditRecorded]]) -> list[Failed]:
        kept = await keep(log, [record_of(m.event) for m in messages])
        runtime.metrics.outcomes.labels("webhooks", "audit_recorded").inc(kept)
        return []
