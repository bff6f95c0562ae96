"""Dead-letter topics: look at what failed, and send it back once its cause is fixed.

A dead letter is the original message's bytes and key, with headers saying why it failed
(``x-error``), who failed it (``x-failed-by``) and where it came from (``x-original-topic``,
``x-original-partition``, ``x-original-offset``). Replaying publishes it again, byte for byte,
to its original topic. The replay's own consumer group remembers how far it got, so a replay
sends each dead letter once; a message that fails again lands in the dead-letter topic anew and
can be replayed after the next fix. Consumers are idempotent, so a replayed message that had
in fact been processed changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from billing_runtime.lag import topic_partitions

REPLAY_GROUP = "billing-dlq-replay"


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message."""

    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def error(self) -> str:
        """Why it failed."""
        return self.headers.get("x-error", "")

    @property
    def original_topic(self) -> str | None:
        """Where it came from."""
        return self.headers.get("x-original-topic")


async def _read_to_end(
    bootstrap_servers: str, topic: str, group: str | None
) -> tuple[list[DeadLetter], AIOKafkaConsumer]:
    """Read from the group's committed position (or the start) to the end as it is now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="billing-dlq")
    await admin.start()
    try:
        partitions = await topic_partitions(admin, [topic])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="billing-dlq",
    )
    await consumer.start()
    consumer.assign(partitions)
    ends = await consumer.end_offsets(partitions)
    letters: list[DeadLetter] = []
    remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=1000)
        for tp, records in batches.items():
            for record in records:
                if record.offset >= ends[tp]:
                    break
                letter = DeadLetter(
                    partition=tp.partition,
                    offset=record.offset,
                    timestamp=datetime.fromtimestamp(record.timestamp / 1000, UTC),
                    key=record.key,
                    value=record.value or b"",
                    headers={k: v.decode(errors="replace") for k, v in record.headers or ()},
                )
                letters.append(letter)
        remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    return letters, consumer


async def list_dead_letters(bootstrap_servers: str, topic: str) -> list[DeadLetter]:
    """Every message in a dead-letter topic, oldest first per partition (nothing committed)."""
    letters, consumer = await _read_to_end(bootstrap_servers, topic, group=None)
    await consumer.stop()
    return letters


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did."""

    replayed: int
    skipped: list[DeadLetter]


async def replay_dead_letters(
    bootstrap_servers: str, topic: str, *, group: str = REPLAY_GROUP
) -> ReplayResult:
    """Publish every dead letter not replayed before back to its original topic; remember it.

    Offsets are committed only after the broker acknowledged the republished messages, so a
    replay that crashes is run again without losing any; one without ``x-original-topic`` is
    skipped (and reported), never guessed.
    """
    letters, consumer = await _read_to_end(bootstrap_servers, topic, group=group)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    skipped: list[DeadLetter] = []
    try:
        futures = []
        for letter in letters:
            if not letter.original_topic:
                skipped.append(letter)
                continue
            headers = [(k, v.encode()) for k, v in letter.headers.items() if not k.startswith("x-")]
            headers.append(
                ("x-replayed-from", f"{topic}:{letter.partition}:{letter.offset}".encode())
            )
            futures.append(
                await producer.send(
                    letter.original_topic, letter.value, key=letter.key, headers=headers
                )
            )
        for future in futures:
            await future
        if letters:
            await consumer.commit(
                {
                    TopicPartition(topic, p): max(x.offset for x in letters if x.partition == p) + 1
                    for p in {x.partition for x in letters}
                }
            )
    finally:
        await producer.stop()
        await consumer.stop()
    return ReplayResult(replayed=len(letters) - len(skipped), skipped=skipped)
