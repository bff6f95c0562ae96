"""Kafka entrypoint: upstream usage events -> usage recorded (bad ones dead-lettered)."""

from __future__ import annotations

from typing import Any

from faststream.kafka.annotations import KafkaMessage

from billing_ingest.adapters.publisher import KafkaUsagePublisher, ingest_topics
from billing_ingest.adapters.submitted_events import MongoSubmittedEvents
from billing_ingest.service.accept_events import accept_usage_events
from billing_ingest.settings import IngestSettings
from billing_runtime.kafka import Failed
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
        results = await accept_usage_events(
            [record.value or b"" for record in records],
            store=MongoSubmittedEvents(runtime.db),
            publisher=publisher,
        )
        # events rejected for a reason of their own (invalid, out of bounds, too large, failing
        # to normalize) also go to the dead-letter topic, with their original bytes and the
        # reason; the rest of the batch goes on. Events on this topic are not token-scoped:
        # the broker's ACLs decide who may produce to it (docs/operations.md).
        failed = [
            Failed(records[r.index], f"UsageSubmitted rejected: {r.reason}")
            for r in results
            if r.verdict == "rejected"
        ]
        with correlated(r.event_id for r in results if r.event_id):
            await runtime.dead_letters.send(failed)
        metrics = runtime.metrics
        metrics.processed.labels("ingest", source).inc(len(records))
        for verdict in ("accepted", "duplicate", "conflict", "rejected"):
            count = sum(1 for r in results if r.verdict == verdict)
            if count:
                metrics.outcomes.labels("ingest", f"usage_event_{verdict}").inc(count)
