"""Kafka entrypoint: upstream usage events -> usage recorded (bad ones dead-lettered)."""

from __future__ import annotations

from typing import Any

from faststream.kafka.annotations import KafkaMessage

from billing_ingest.adapters.publisher import KafkaUsagePublisher, ingest_topics
from billing_ingest.domain.submitted import submitted_to_record
from billing_ingest.settings import IngestSettings
from billing_runtime.kafka import decode_batch
from billing_runtime.observability import correlated
from billing_runtime.service import Runtime, declare_output
from billing_runtime.tracing import consuming
from billing_schemas.events import (
    BillProcessed,
    UsageRecorded,
    UsageRejected,
    UsageSubmitted,
)
from billing_schemas.topics import Topic, dead_letter_name, topic_name

SOURCE = "billing-ingest"


def register(runtime: Runtime, settings: IngestSettings) -> None:
    """Subscribe the ingest consumer group to upstream usage events."""
    ns = settings.topic_namespace
    runtime.topics += ingest_topics(ns)
    runtime.consumes["accept-usage-events"] = UsageSubmitted
    for topic, schema, what in (
        (Topic.USAGE_RECORDED, UsageRecorded, "Each accepted usage record."),
        (Topic.USAGE_REJECTED, UsageRejected, "Each rejected row or event, with the reason."),
        (Topic.BILL_PROCESSED, BillProcessed, "The figures of each bill file loaded."),
    ):
        declare_output(runtime, topic_name(topic, ns), schema, what)
    declare_output(
        runtime,
        dead_letter_name(Topic.USAGE_SUBMITTED, ns),
        bytes,
        "Upstream events that failed validation: original bytes, error in x-error.",
    )
    publisher = KafkaUsagePublisher(runtime.publisher, ns)

    source = topic_name(Topic.USAGE_SUBMITTED, ns)

    @runtime.batch_subscriber(
        source,
        group=settings.consumer_group,
        title="accept-usage-events",
        description="Validates upstream usage events; each valid one becomes a usage record.",
    )
    async def on_usage_submitted(body: list[bytes], msg: KafkaMessage) -> None:
        del body
        records: Any = msg.raw_message
        with consuming("ingest", source, records):
            await accept(records)

    async def accept(records: Any) -> None:
        batch = decode_batch(records, UsageSubmitted)
        recorded = []
        for _, event in batch.events:
            record = submitted_to_record(event)
            recorded.append(
                (
                    record.sub_account_id,
                    UsageRecorded.create(
                        record,
                        source=SOURCE,
                        correlation_id=event.id,
                        event_id=f"usage-recorded:{record.record_id}",
                    ),
                )
            )
        with correlated(e.correlation_id for _, e in recorded):
            await publisher.usage(recorded)
            await runtime.dead_letters.send(batch.failed)
        metrics = runtime.metrics
        metrics.processed.labels("ingest", source).inc(len(records))
        metrics.outcomes.labels("ingest", "usage_recorded").inc(len(recorded))
        metrics.outcomes.labels("ingest", "usage_rejected").inc(len(batch.failed))
