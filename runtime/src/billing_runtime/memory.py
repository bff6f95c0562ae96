"""The :class:`~billing_runtime.kafka.Publisher` port in memory, delivering to the consumers.

:class:`InMemoryBroker` keeps each topic as Kafka would: messages as bytes with their key and
headers, spread over partitions by the same murmur2 partitioner, offsets counted per partition.
:meth:`InMemoryBroker.deliver` hands what a service's consumers have not yet processed to them,
batch by batch, through the same :class:`~billing_runtime.consumer.Consumer` plumbing the real
broker drives (decoding, dead letters, tracing, metrics), and remembers a group's position only
once its batch was handled, so a batch that raises comes again on the next delivery, as with
``NACK_ON_ERROR``. What a handler publishes is delivered in turn until nothing is left: a
service's flow runs in memory, without a broker. Like the broker, it refuses a message larger
than :data:`MAX_MESSAGE_BYTES` (:class:`~aiokafka.errors.MessageSizeTooLargeError`). What it does
not model (several consumers in a group, rebalances, commits lost in a crash, topics that do not
exist, a broker that compresses a large message under its limit) needs the real broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from billing_runtime.kafka import RawRecord, event_headers
from billing_schemas.events import Envelope
from billing_schemas.topics import DEFAULT_PARTITIONS

if TYPE_CHECKING:
    from billing_runtime.consumer import Consumer, Record
    from billing_runtime.service import Runtime

_PARTITIONS = list(range(DEFAULT_PARTITIONS))
MAX_MESSAGE_BYTES = 1 << 20
"""The largest message (key, value and headers, uncompressed) kept: the producer's
``max_request_size`` and about the broker's ``message.max.bytes``, which the broker applies
after compression (so Kafka may take a larger message that compresses well)."""


class InMemoryBroker:
    """Topics in memory: a :class:`~billing_runtime.kafka.Publisher`, and the consumers' feed."""

    def __init__(self) -> None:
        self.topics: dict[str, list[Record]] = {}
        self._offsets: dict[tuple[str, int], int] = {}
        self._positions: dict[tuple[str, str], int] = {}
        self._partitioner = DefaultPartitioner()

    async def start(self) -> None:
        """Nothing to connect."""

    async def stop(self) -> None:
        """Nothing to flush."""

    async def publish(self, topic: str, events: Sequence[tuple[str, Envelope]]) -> None:
        """See :class:`~billing_runtime.kafka.Publisher`."""
        self._append(
            topic,
            [
                (
                    key.encode(),
                    event.model_dump_json().encode(),
                    event_headers(event.event_type, event.correlation_id),
                )
                for key, event in events
            ],
        )

    async def publish_serialized(
        self,
        topic: str,
        records: Sequence[tuple[str, bytes]],
        *,
        event_type: str,
        correlation_id: str,
    ) -> None:
        """See :class:`~billing_runtime.kafka.Publisher`."""
        headers = event_headers(event_type, correlation_id)
        self._append(topic, [(key.encode(), value, headers) for key, value in records])

    async def publish_raw(self, topic: str, records: Sequence[RawRecord]) -> None:
        """See :class:`~billing_runtime.kafka.Publisher`."""
        self._append(topic, records)

    def _append(self, topic: str, records: Sequence[RawRecord]) -> None:
        for key, value, headers in records:
            size = len(key or b"") + len(value) + sum(len(k) + len(v) for k, v in headers)
            if size > MAX_MESSAGE_BYTES:
                msg = f"a message of {size} bytes to {topic}: over {MAX_MESSAGE_BYTES}"
                raise MessageSizeTooLargeError(msg)
        log = self.topics.setdefault(topic, [])
        for key, value, headers in records:
            partition = self._partitioner(key, _PARTITIONS, _PARTITIONS) if key else 0
            offset = self._offsets.get((topic, partition), 0)
            self._offsets[topic, partition] = offset + 1
            log.append(
                ConsumerRecord(
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    timestamp=0,
                    timestamp_type=0,
                    key=key,
                    value=value,
                    checksum=None,
                    serialized_key_size=len(key or b""),
                    serialized_value_size=len(value),
                    headers=list(headers),
                )
            )

    def records(self, topic: str) -> list[Record]:
        """Everything published to ``topic`` so far, in publishing order."""
        return list(self.topics.get(topic, []))

    async def deliver(self, *runtimes: Runtime) -> int:
        """Hand the runtimes' consumers what they have not processed, in batches, until no
        consumer has anything left; the number of messages handed over."""
        delivered = 0
        while True:
            fed = 0
            for runtime in runtimes:
                for consumer in runtime.consumers:
                    fed += await self._feed(consumer)
            if not fed:
                return delivered
            delivered += fed

    async def _feed(self, consumer: Consumer[Any]) -> int:
        fed = 0
        for topic in consumer.topics:
            while True:
                start = self._positions.get((consumer.group_id, topic), 0)
                batch = self.topics.get(topic, [])[start : start + consumer.max_records]
                if not batch:
                    break
                await consumer.process(batch)  # raises: the position stays, the batch comes again
                self._positions[consumer.group_id, topic] = start + len(batch)
                fed += len(batch)
        return fed
