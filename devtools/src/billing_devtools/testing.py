"""Helpers for tests that talk to the real broker (used by every service's tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

WITHIN_SECONDS = 30.0
T = TypeVar("T")


class TopicReader:
    """Everything published to one topic since the reader started (no consumer group)."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.records: list[Any] = []
        self._consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest"
        )

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def wait_for(self, count: int, within: float = WITHIN_SECONDS) -> list[Any]:
        """Read until ``count`` records arrived (within the deadline); return them all."""
        deadline = asyncio.get_running_loop().time() + within
        while len(self.records) < count:
            if asyncio.get_running_loop().time() > deadline:
                msg = f"{len(self.records)} of {count} records after {within} s"
                raise AssertionError(msg)
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                self.records.extend(records)
        return self.records


async def read_keyed(
    bootstrap_servers: str,
    topic: str,
    decode: Callable[[bytes], T],
    count: int,
    within: float = WITHIN_SECONDS,
) -> list[tuple[str | None, T]]:
    """Every message of ``topic`` once ``count`` arrived, as (key, decoded value), in order
    within a partition (what a publisher contract test compares on both sides)."""
    async with TopicReader(bootstrap_servers, topic) as reader:
        records = await reader.wait_for(count, within)
    return [(r.key.decode() if r.key is not None else None, decode(r.value)) for r in records]


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, within: float = WITHIN_SECONDS
) -> None:
    """Poll ``check`` until it holds; fail after the deadline."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            msg = f"timed out after {within} s waiting for {what}"
            raise AssertionError(msg)
        await asyncio.sleep(0.1)


async def produce(
    bootstrap_servers: str, topic: str, messages: list[tuple[bytes | None, bytes]]
) -> None:
    """Publish raw ``(key, value)`` messages and wait for the broker's acknowledgement."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
