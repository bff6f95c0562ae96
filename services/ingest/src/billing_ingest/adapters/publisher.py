"""Kafka side of ingest: accepted usage, rejected rows and bill figures to their topics."""

from __future__ import annotations

from billing_runtime.kafka import Publisher
from billing_schemas.events import BillProcessed, UsageRecorded, UsageRejected
from billing_schemas.topics import Topic, topic_name

USAGE_RECORDED = UsageRecorded.model_fields["event_type"].default


class KafkaUsagePublisher:
    """:class:`~billing_ingest.ports.UsagePublisher` over Kafka."""

    def __init__(self, publisher: Publisher, namespace: str = "") -> None:
        self._publisher = publisher
        self._ns = namespace

    async def usage(self, events: list[tuple[str, UsageRecorded]]) -> None:
        """Publish accepted records, keyed by sub-account."""
        await self._publisher.publish(topic_name(Topic.USAGE_RECORDED, self._ns), events)

    async def usage_serialized(self, records: list[tuple[str, bytes]], correlation_id: str) -> None:
        """Publish accepted records already serialized (``UsageRecorded`` JSON), by sub-account."""
        await self._publisher.publish_serialized(
            topic_name(Topic.USAGE_RECORDED, self._ns),
            records,
            event_type=USAGE_RECORDED,
            correlation_id=correlation_id,
        )

    async def rejected(self, events: list[tuple[str, UsageRejected]]) -> None:
        """Publish rejected rows, keyed by bill."""
        await self._publisher.publish(topic_name(Topic.USAGE_REJECTED, self._ns), events)

    async def bill_processed(self, event: BillProcessed) -> None:
        """Publish the bill's figures."""
        await self._publisher.publish(
            topic_name(Topic.BILL_PROCESSED, self._ns), [(event.data.bill_id, event)]
        )


def ingest_topics(namespace: str) -> list[str]:
    """Topics ingest writes to (and their dead-letter topics)."""
    names: list[str] = []
    for topic in (
        Topic.USAGE_SUBMITTED,
        Topic.USAGE_RECORDED,
        Topic.USAGE_REJECTED,
        Topic.BILL_PROCESSED,
    ):
        names += [topic_name(topic, namespace), f"{topic_name(topic, namespace)}.dlq"]
    return names
