"""Consumer lag on the real broker: what ``billing wait`` relies on to say "idle"."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from billing_devtools.testing import produce
from billing_runtime import lag
from billing_runtime.kafka import ensure_topics
from billing_runtime.lag import UnknownTopicError, consumer_lag
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


async def test_waiting_keeps_one_admin_client_for_the_whole_wait(
    infra: Infra, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``billing wait`` used to open a new admin client (and consumer) on every poll."""
    topic, group = f"{namespace}.idle", f"{namespace}.group"
    await ensure_topics(infra.kafka_bootstrap_servers, [topic], partitions=2)
    started: list[str] = []

    class CountingAdmin(AIOKafkaAdminClient):  # type: ignore[misc]  # aiokafka is untyped
        async def start(self) -> None:
            started.append("admin")
            await super().start()

    monkeypatch.setattr(lag, "AIOKafkaAdminClient", CountingAdmin)
    monkeypatch.setattr(lag, "POLL_SECONDS", 0.1, raising=False)
    lags = await lag.wait_for_no_lag(
        infra.kafka_bootstrap_servers, [(group, [topic])], within_seconds=10, settle=0.5
    )
    assert lags == {group: 0}
    assert started == ["admin"]
