"""The :class:`~billing_runtime.kafka.Publisher` port's contract, run against the in-memory
broker (``billing_runtime.memory``) and the batched Kafka publisher on the real broker: what a
reader of the topic gets (keys, order per key, the partition of a key, headers, payload
bytes), an empty batch, and a message the broker refuses."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from billing_devtools.testing import TopicReader
from billing_runtime.kafka import EventPublisher, Publisher, ensure_topics
from billing_runtime.memory import InMemoryBroker
from billing_schemas.events import BillProcessed, BillSummary
from billing_schemas.topics import DEFAULT_PARTITIONS

if TYPE_CHECKING:
    from conftest import Infra

READ_WITHIN_SECONDS = 8.0
PARTITIONS = list(range(DEFAULT_PARTITIONS))
TOO_LARGE = 2 << 20
"""Bytes of a payload no broker of ours takes (its limit is about 1 MiB); random, so that
compression cannot shrink it under the limit."""


@dataclass(frozen=True)
class Read:
    """One message as a reader of the topic sees it."""

    partition: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


class Bus(Protocol):
    """A publisher, the topics it may publish to, and a reader of what arrived."""

    @property
    def publisher(self) -> Publisher:
        """The publisher under test."""
        ...

    async def topic(self, name: str) -> str:
        """A topic of this test, existing on the broker."""
        ...

    async def read(self, topic: str, count: int) -> list[Read]:
        """Every message of ``topic`` once ``count`` arrived, in order within a partition."""
        ...


def _read(record: Any) -> Read:
    return Read(
        partition=record.partition,
        key=record.key,
        value=record.value,
        headers={k: bytes(v) for k, v in record.headers or ()},
    )


class MemoryBus:
    def __init__(self, namespace: str) -> None:
        self.publisher = self.broker = InMemoryBroker()
        self._namespace = namespace

    async def topic(self, name: str) -> str:
        return f"{self._namespace}.{name}"

    async def read(self, topic: str, count: int) -> list[Read]:
        del count  # everything is there once published
        return [_read(r) for r in self.broker.records(topic)]


class KafkaBus:
    def __init__(self, bootstrap_servers: str, namespace: str) -> None:
        self.publisher = EventPublisher(bootstrap_servers, "billing-contract")
        self._bootstrap_servers = bootstrap_servers
        self._namespace = namespace

    async def topic(self, name: str) -> str:
        topic = f"{self._namespace}.{name}"
        await ensure_topics(self._bootstrap_servers, [topic])
        return topic

    async def read(self, topic: str, count: int) -> list[Read]:
        async with TopicReader(self._bootstrap_servers, topic) as reader:
            return [_read(r) for r in await reader.wait_for(count, READ_WITHIN_SECONDS)]


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
async def bus(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[Bus]:
    chosen: Bus
    if request.param == "memory":
        chosen = MemoryBus(namespace)
    else:
        # only this parameter needs the broker (the namespace fixture then deletes its topics)
        infra: Infra = request.getfixturevalue("infra")
        chosen = KafkaBus(infra.kafka_bootstrap_servers, namespace)
    await chosen.publisher.start()
    try:
        yield chosen
    finally:
        await chosen.publisher.stop()


def _event(bill_id: str, correlation_id: str = "corr-1") -> BillProcessed:
    return BillProcessed.create(
        BillSummary(
            bill_id=bill_id,
            file_name=f"{bill_id}.csv",
            checksum_sha256="0" * 64,
            format="focus-1.0",
            status="processed",
            billing_periods=["2024-09"],
            rows_read=1,
            rows_accepted=1,
            rows_rejected=0,
            billed_cost_totals={"USD": Decimal("1.50")},
        ),
        source="contract",
        correlation_id=correlation_id,
        occurred_at=datetime(2024, 10, 1, tzinfo=UTC),
    )


def _partition(key: bytes) -> int:
    return int(DefaultPartitioner()(key, PARTITIONS, PARTITIONS))


def _by_key(reads: Sequence[Read]) -> dict[bytes | None, list[bytes]]:
    values: dict[bytes | None, list[bytes]] = {}
    for read in reads:
        values.setdefault(read.key, []).append(read.value)
    return values


async def test_a_batch_arrives_keyed_in_order_per_key_with_its_headers(bus: Bus) -> None:
    topic = await bus.topic("bills")
    keys = ["acme", "globex", "initech"]
    events = [(keys[i % 3], _event(f"b{i}")) for i in range(12)]

    await bus.publisher.publish(topic, events)
    reads = await bus.read(topic, len(events))

    assert len(reads) == len(events)
    assert _by_key(reads) == {
        key.encode(): [e.model_dump_json().encode() for k, e in events if k == key] for key in keys
    }
    for read in reads:
        assert read.key is not None
        # the partition any Kafka client gives the key (murmur2), not just any partition
        assert read.partition == _partition(read.key)
        assert read.headers["content-type"] == b"application/json"
        assert read.headers["event-type"] == b"bill.processed"
        assert read.headers["correlation_id"] == b"corr-1"


async def test_serialized_records_carry_the_event_type_and_correlation_given(bus: Bus) -> None:
    topic = await bus.topic("serialized")
    records = [("acme", b'{"n": 1}'), ("acme", b'{"n": 2}'), ("globex", b'{"n": 3}')]

    await bus.publisher.publish_serialized(
        topic, records, event_type="billing.usage.recorded", correlation_id="bill-7"
    )
    reads = await bus.read(topic, len(records))

    assert _by_key(reads) == {b"acme": [b'{"n": 1}', b'{"n": 2}'], b"globex": [b'{"n": 3}']}
    assert {read.headers["event-type"] for read in reads} == {b"billing.usage.recorded"}
    assert {read.headers["correlation_id"] for read in reads} == {b"bill-7"}
    assert all(read.partition == _partition(read.key or b"") for read in reads)


async def test_raw_records_arrive_as_they_are_keyless_ones_too(bus: Bus) -> None:
    topic = await bus.topic("raw")
    value = bytes(range(256))  # not JSON, not UTF-8: a dead letter is carried byte for byte
    records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = [
        (b"acme", value, [("x-error", b"bad row"), ("x-original-offset", b"7")]),
        (None, b"no key", [("x-error", b"\xff not utf-8")]),
    ]

    await bus.publisher.publish_raw(topic, records)
    reads = await bus.read(topic, len(records))

    assert sorted(((r.key or b""), r.value, r.headers) for r in reads) == [
        (b"", b"no key", {"x-error": b"\xff not utf-8"}),
        (b"acme", value, {"x-error": b"bad row", "x-original-offset": b"7"}),
    ]
    keyed = next(r for r in reads if r.key == b"acme")
    assert keyed.partition == _partition(b"acme")


async def test_an_empty_batch_publishes_nothing(bus: Bus) -> None:
    topic = await bus.topic("empty")

    await bus.publisher.publish(topic, [])
    await bus.publisher.publish_serialized(topic, [], event_type="e", correlation_id="c")
    await bus.publisher.publish_raw(topic, [])
    after = _event("after")
    await bus.publisher.publish(topic, [("acme", after)])  # something to wait for
    reads = await bus.read(topic, 1)

    assert [r.value for r in reads] == [after.model_dump_json().encode()]


async def test_a_message_over_the_brokers_size_limit_is_refused(bus: Bus) -> None:
    topic = await bus.topic("large")
    payload = os.urandom(TOO_LARGE)

    with pytest.raises(MessageSizeTooLargeError):
        await bus.publisher.publish_serialized(
            topic, [("acme", payload)], event_type="e", correlation_id="c"
        )
    with pytest.raises(MessageSizeTooLargeError):
        await bus.publisher.publish_raw(topic, [(b"acme", payload, [])])


async def test_after_a_refused_message_the_publisher_still_publishes(bus: Bus) -> None:
    topic = await bus.topic("after-refusal")
    await bus.publisher.publish_serialized(
        topic, [("acme", b'{"n": 0}')], event_type="e", correlation_id="c"
    )
    with pytest.raises(MessageSizeTooLargeError):
        await bus.publisher.publish_serialized(
            topic, [("acme", os.urandom(TOO_LARGE))], event_type="e", correlation_id="c"
        )

    # the same key, so the same partition the broker refused a batch on
    await bus.publisher.publish_serialized(
        topic, [("acme", b'{"n": 1}')], event_type="e", correlation_id="c"
    )
    await bus.publisher.publish_raw(topic, [(b"acme", b'{"n": 2}', [])])
    reads = await bus.read(topic, 3)

    assert [r.value for r in reads] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
