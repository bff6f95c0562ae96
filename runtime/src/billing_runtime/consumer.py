"""One way to consume a channel: decode, trace, correlate, dead-letter, count; the handler decides.

A service declares a consumer with ``@runtime.consumer(channel, group=...)`` on a typed batch
handler, ``async (messages: list[Message[E]]) -> Sequence[Failed]``. The plumbing around it is
the same for every consumer, here once:

* each record is validated on its own against its channel's payload; one that does not validate
  goes to the dead-letter topic with the error, its neighbours to the handler;
* the handler runs in a CONSUMER span (child of the batch's first record's trace) and with the
  batch's correlation ids on every log line;
* what the handler returns as failed (a record's own fault, with the reason) is dead-lettered,
  awaited, before the batch's offsets are committed; an exception fails the batch, which is
  delivered again;
* messages processed and dead-lettered are counted per topic;
* the consumer's topics and dead-letter topics are created at start-up and documented in the
  service's AsyncAPI document.

The same :class:`Consumer` is driven by FastStream on the real broker and by
:class:`~billing_runtime.memory.InMemoryBroker` in tests, so a flow test runs on both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from billing_runtime.kafka import Failed
from billing_runtime.observability import correlated
from billing_runtime.tracing import consuming
from billing_schemas.channels import Channel, ConsumerGroup

if TYPE_CHECKING:
    from billing_runtime.service import Runtime

E = TypeVar("E")
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


@dataclass(frozen=True, slots=True)
class Message(Generic[E]):
    """One consumed message: its event (validated) and the record it came in."""

    event: E
    record: Record

    def failed(self, reason: str) -> Failed:
        """This message, to be dead-lettered with ``reason``."""
        return Failed(self.record, reason)


BatchHandler = Callable[[list[Message[E]]], Awaitable[Sequence[Failed]]]
"""A consumer's work: the batch's valid messages in, the ones that failed (with why) out."""


@dataclass(eq=False)
class Consumer(Generic[E]):
    """A batch handler bound to its channels and consumer group, with the shared plumbing."""

    runtime: Runtime
    channels: tuple[Channel[Any], ...]
    group: ConsumerGroup
    group_id: str
    title: str
    description: str
    handler: BatchHandler[E]
    max_records: int
    decode: bool = True

    def __post_init__(self) -> None:
        ns = self.runtime.settings.topic_namespace
        self._by_name = {channel.name(ns): channel for channel in self.channels}

    @property
    def topics(self) -> list[str]:
        """The consumed topics' names on the broker."""
        return list(self._by_name)

    async def process(self, records: Sequence[Record]) -> None:
        """Handle one batch the way every consumer does (see the module's docstring)."""
        runtime = self.runtime
        messages: list[Message[Any]] = []
        failed: list[Failed] = []
        for record in records:
            channel = self._by_name[record.topic]
            if not self.decode:
                messages.append(Message(record.value or b"", record))
                continue
            try:
                messages.append(Message(channel.decode(record.value or b""), record))
            except ValidationError as exc:
                failed.append(Failed(record, f"{channel.payload_name} validation failed: {exc}"))
        topic = self.topics[0] if len(self.topics) == 1 else self.title
        ids = [m.event.correlation_id for m in messages if hasattr(m.event, "correlation_id")]
        with consuming(runtime.service, topic, records), correlated(ids):
            failed += await self.handler(messages)
            await runtime.dead_letters.send(failed)
        for name, count in Counter(record.topic for record in records).items():
            runtime.metrics.processed.labels(runtime.service, name).inc(count)
