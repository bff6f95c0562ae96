"""Consumer-group lag: how many messages a group has not yet committed, per topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

COORDINATOR_ATTEMPTS = 60
POLL_SECONDS = 0.5


class UnknownTopicError(LookupError):
    """A topic whose lag was asked for does not exist (or has no partitions)."""


async def topic_partitions(
    admin: AIOKafkaAdminClient, topics: Sequence[str]
) -> list[TopicPartition]:
    """Every partition of ``topics``; a topic that cannot be described is an error, never
    "no partitions", since that would read as zero lag."""
    partitions = []
    for description in await admin.describe_topics(list(topics)):
        if description["error_code"] != 0 or not description["partitions"]:
            topic, code = description["topic"], description["error_code"]
            msg = f"topic {topic!r} cannot be described (Kafka error {code})"
            raise UnknownTopicError(msg)
        partitions += [
            TopicPartition(description["topic"], p["partition"]) for p in description["partitions"]
        ]
    return sorted(partitions)


async def _committed_offsets(
    admin: AIOKafkaAdminClient, group: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, Any]:
    """The group's committed offsets, waiting out a coordinator that is not ready yet.

    A broker that just started creates its offsets topic on the first group request and answers
    "coordinator not available" meanwhile: that is worth a short wait, not an error.
    """
    for attempt in range(COORDINATOR_ATTEMPTS):
        try:
            result: dict[TopicPartition, Any] = await admin.list_consumer_group_offsets(
                group, partitions=partitions
            )
        except KafkaError as exc:
            if not exc.retriable or attempt == COORDINATOR_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.5)
        else:
            return result
    raise AssertionError  # unreachable: the loop returns or raises


class LagProbe:
    """One admin client and one consumer, opened once and reused for every lag reading (a
    waiting loop that opened new clients on each poll paid their connections and metadata
    requests every half second)."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers, client_id="billing-lag"
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, client_id="billing-lag"
        )

    async def __aenter__(self) -> LagProbe:
        await self._admin.start()
        try:
            await self._consumer.start()
        except BaseException:
            await self._admin.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._consumer.stop()
        finally:
            await self._admin.close()

    async def lag(self, group: str, topics: Sequence[str]) -> int:
        """Messages on ``topics`` that ``group`` has not committed (all partitions)."""
        partitions = await topic_partitions(self._admin, topics)
        ends = await self._consumer.end_offsets(partitions)
        committed = await _committed_offsets(self._admin, group, partitions)
        lag = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, end - done)
        return lag


async def consumer_lag(bootstrap_servers: str, group: str, topics: Sequence[str]) -> int:
    """Messages on ``topics`` that ``group`` has not committed (all partitions), read once."""
    async with LagProbe(bootstrap_servers) as probe:
        return await probe.lag(group, topics)


async def wait_for_no_lag(
    bootstrap_servers: str,
    groups: Sequence[tuple[str, Sequence[str]]],
    *,
    within_seconds: float = 120.0,
    settle: float = 1.0,
) -> dict[str, int]:
    """Wait until every ``(group, topics)`` has committed everything; return the last lags.

    Lag must stay at zero for ``settle`` seconds across all groups, since one group's output is
    the next group's input. Raises ``TimeoutError`` with the lags after ``within_seconds``.
    One admin client and one consumer serve the whole wait.
    """
    deadline = time.monotonic() + within_seconds
    zero_since: float | None = None
    async with LagProbe(bootstrap_servers) as probe:
        while True:
            lags = {g: await probe.lag(g, t) for g, t in groups}
            now = time.monotonic()
            if all(v == 0 for v in lags.values()):
                zero_since = zero_since or now
                if now - zero_since >= settle:
                    return lags
            else:
                zero_since = None
            if now > deadline:
                msg = f"consumers still lagging after {within_seconds:.0f} s: {lags}"
                raise TimeoutError(msg)
            await asyncio.sleep(POLL_SECONDS)
