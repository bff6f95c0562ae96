"""Kafka entrypoints: rated charges onto drafts; the period-close command."""

from __future__ import annotations

from typing import Any

from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.service.generate_invoices import InvoicingPorts, generate_invoices
from billing_invoicing.settings import InvoicingSettings
from billing_runtime.kafka import decode_batch, raw_batch_decoder
from billing_runtime.service import Runtime
from billing_schemas.events import ChargeRated, GenerateInvoices
from billing_schemas.topics import Topic, dead_letter_name, topic_name


def register(
    runtime: Runtime,
    settings: InvoicingSettings,
    invoices: MongoInvoiceRepository,
    ports: InvoicingPorts,
) -> None:
    """Subscribe the invoicing consumer group to rated charges and close commands."""
    ns = settings.topic_namespace
    for topic in (Topic.CHARGE_RATED, Topic.INVOICES_GENERATE, Topic.INVOICE_FINALIZED):
        runtime.topics += [topic_name(topic, ns), dead_letter_name(topic, ns)]

    @runtime.broker.subscriber(
        topic_name(Topic.CHARGE_RATED, ns),
        group_id=f"{ns}{settings.consumer_group}",
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_batch_decoder,
        title="add-charges-to-drafts",
        description="Stores each rated charge once and recomputes the drafts it lands on.",
    )
    async def on_charge_rated(body: list[bytes], msg: KafkaMessage) -> None:
        del body
        records: Any = msg.raw_message
        batch = decode_batch(records, ChargeRated)
        touched = await invoices.store_charges(event.data for _, event in batch.events)
        for invoice_id in sorted(touched):
            await invoices.refresh_draft(invoice_id)
        await runtime.dead_letters.send(batch.failed)

    @runtime.broker.subscriber(
        topic_name(Topic.INVOICES_GENERATE, ns),
        group_id=f"{ns}{settings.consumer_group}-commands",
        batch=True,
        max_records=1,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_batch_decoder,
        title="generate-invoices",
        description="Closes a billing period: finalizes, numbers and renders its invoices.",
    )
    async def on_generate_invoices(body: list[bytes], msg: KafkaMessage) -> None:
        del body
        records: Any = msg.raw_message
        batch = decode_batch(records, GenerateInvoices)
        for _, command in batch.events:
            await generate_invoices(
                ports,
                period=command.data.period,
                customer_id=command.data.customer_id,
                dry_run=command.data.dry_run,
                correlation_id=command.correlation_id,
            )
        await runtime.dead_letters.send(batch.failed)
