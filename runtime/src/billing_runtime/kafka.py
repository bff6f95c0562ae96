"""Kafka plumbing shared by the services: broker factory, topics, batch decoding, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter, ValidationError

from billing_runtime.settings import ServiceSettings
from billing_schemas.events import Envelope
from billing_schemas.topics import DEAD_LETTER_SUFFIX, DEFAULT_PARTITIONS

log = logging.getLogger("billing.kafka")

E = TypeVar("E")


def make_broker(
    settings: ServiceSettings, service: str, registry: CollectorRegistry
) -> KafkaBroker:
    """A broker for one service, with Prometheus metrics and a graceful-shutdown timeout."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"billing-{service}",
        graceful_timeout=settings.graceful_timeout_seconds,
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=f"billing-{service}")],
        acks="all",
        enable_idempotence=True,
        logger=logging.getLogger(f"billing.{service}.broker"),
    )


async def ensure_topics(
    bootstrap_servers: str, names: Iterable[str], partitions: int = DEFAULT_PARTITIONS
) -> None:
    """Create the topics that do not exist yet (the local broker does not auto-create)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="billing-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing:
            # another service may create the same topic meanwhile: that is fine
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
                )
            log.info("created topics %s", ", ".join(missing))
    finally:
        await admin.close()


async def raw_batch_decoder(msg: StreamMessage[Any]) -> Any:
    """Hand the handler the undecoded bodies: it validates each message itself.

    FastStream's default decoder would parse JSON before the handler runs, and one message that
    is not JSON would then fail the whole batch forever. Validation per message lets a bad one
    go to the dead-letter topic while its neighbours are processed.
    """
    return msg.body


@dataclass(frozen=True)
class Failed:
    """A record that could not be processed, with the reason."""

    record: ConsumerRecord[bytes, bytes]
    error: str


@dataclass
class DecodedBatch(Generic[E]):
    """A batch split into the events that validated and the records that did not."""

    events: list[tuple[ConsumerRecord[bytes, bytes], E]] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)


def decode_batch(
    records: Sequence[ConsumerRecord[bytes, bytes]], model: type[E] | TypeAdapter[E]
) -> DecodedBatch[E]:
    """Validate every record of a batch against ``model``; never raises for a bad record.

    ``model`` is an event class, or a ``TypeAdapter`` of a union of them for a topic that
    carries several event types.
    """
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    name = getattr(model, "__name__", None) or str(adapter.core_schema.get("type", "event"))
    batch: DecodedBatch[E] = DecodedBatch()
    for record in records:
        try:
            batch.events.append((record, adapter.validate_json(record.value or b"")))
        except ValidationError as exc:
            batch.failed.append(Failed(record, f"{name} validation failed: {exc}"))
    return batch


class DeadLetters:
    """Sends records a service cannot process to ``<topic>.dlq``: the original bytes, never lost.

    Headers say why and from where: ``x-error``, ``x-original-topic``, ``x-original-partition``,
    ``x-original-offset``, ``x-failed-by``. The publish is awaited, so a dead letter is on the
    broker before the batch's offsets are committed.
    """

    def __init__(self, broker: KafkaBroker, service: str) -> None:
        self._broker = broker
        self._service = service

    async def send(self, failed: Sequence[Failed]) -> None:
        """Publish each failed record to its topic's dead-letter topic."""
        for item in failed:
            record = item.record
            log.warning(
                "dead-lettering %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                item.error[:500],
            )
            headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
            headers.update(
                {
                    "x-error": item.error[:4000],
                    "x-original-topic": record.topic,
                    "x-original-partition": str(record.partition),
                    "x-original-offset": str(record.offset),
                    "x-failed-by": self._service,
                }
            )
            await self._broker.publish(
                record.value or b"",
                topic=f"{record.topic}{DEAD_LETTER_SUFFIX}",
                key=record.key,
                headers=headers,
            )


async def publish_events(
    broker: KafkaBroker, topic: str, events: Sequence[tuple[str, Envelope]]
) -> None:
    """Publish keyed events and wait until the broker acknowledged every one.

    Sends are pipelined (no wait per message) and then awaited together, so a batch costs one
    round of acknowledgements; the caller commits its input only after this returns.
    """
    futures: list[asyncio.Future[Any]] = []
    for key, event in events:
        future = await broker.publish(
            event.model_dump_json().encode(),
            topic=topic,
            key=key.encode(),
            headers={"content-type": "application/json", "event-type": event.event_type},
            correlation_id=event.correlation_id,
            no_confirm=True,
        )
        futures.append(future)
    if futures:
        await asyncio.gather(*futures)
