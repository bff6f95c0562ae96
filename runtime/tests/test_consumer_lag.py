"""Consumer lag on the real broker: what ``billing wait`` relies on to say "idle"."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from billing_runtime.kafka import ensure_topics
from billing_runtime.lag import UnknownTopicError, consumer_lag
from billing_runtime.testing import produce
from conftest import Infra

pytestmark = pytest.mark.integration


async def test_lag_counts_every_uncommitted_message_on_every_partition(
    infra: Infra, namespace: str
) -> None:
    topic, group = f"{namespace}.lagged", f"{namespace}.group"
    await ensure_topics(infra.kafka_bootstrap_servers, [topic], partitions=3)
    await produce(infra.kafka_bootstrap_servers, topic, [(str(i).encode(), b"m") for i in range(7)])
    # a group that never committed lags by everything: a fresh topic's metadata must not read as 0
    assert await consumer_lag(infra.kafka_bootstrap_servers, group, [topic]) == 7

    consumer = AIOKafkaConsumer(
        bootstrap_servers=infra.kafka_bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
        first = TopicPartition(topic, 0)
        consumer.assign([first])
        await consumer.commit({first: OffsetAndMetadata(ends[first], "")})
    finally:
        await consumer.stop()
    assert await consumer_lag(infra.kafka_bootstrap_servers, group, [topic]) == 7 - ends[first]


async def test_an_unknown_topic_is_an_error_not_zero_lag(infra: Infra, namespace: str) -> None:
    with pytest.raises(UnknownTopicError, match="cannot be described"):
        await consumer_lag(infra.kafka_bootstrap_servers, "g", [f"{namespace}.missing"])
