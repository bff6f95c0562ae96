"""The consumer decorator's plumbing, driven by the in-memory broker: a bad record never takes
its neighbours down with it, a failure is dead-lettered with its reason, an exception redelivers
the batch, and a group or payload a channel does not declare fails at registration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing_runtime.consumer import Message
from billing_runtime.kafka import Failed
from billing_runtime.memory import InMemoryBroker
from billing_runtime.service import Runtime, create_runtime, declare_output
from billing_runtime.settings import ServiceSettings
from billing_schemas.channels import (
    BILL_PROCESSED,
    CHARGE_RATED,
    NOTIFY_BILL_REPORTS,
    RATING,
    ChannelError,
)
from billing_schemas.events import BillProcessed, BillSummary, UsageRecorded

NS = "ns."


def _event(bill_id: str = "b1") -> BillProcessed:
    return BillProcessed.create(
        BillSummary(
            bill_id=bill_id,
            file_name="f.csv",
            checksum_sha256="0" * 64,
            format="focus-1.0",
            status="processed",
            billing_periods=["2024-09"],
            rows_read=1,
            rows_accepted=1,
            rows_rejected=0,
            billed_cost_totals={"USD": Decimal("1.5")},
        ),
        source="test",
        correlation_id=f"c-{bill_id}",
        occurred_at=datetime(2024, 10, 1, tzinfo=UTC),
    )


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    runtime = create_runtime("notify", ServiceSettings(topic_namespace=NS), InMemoryBroker())
    try:
        yield runtime
    finally:
        await runtime.mongo.close()


def _broker(runtime: Runtime) -> InMemoryBroker:
    assert isinstance(runtime.publisher, InMemoryBroker)
    return runtime.publisher


def _sample(runtime: Runtime, metric: str, topic: str) -> float | None:
    return runtime.registry.get_sample_value(metric, {"service": "notify", "topic": topic})


async def test_invalid_records_are_split_from_valid_ones(runtime: Runtime) -> None:
    seen: list[Message[BillProcessed]] = []

    @runtime.consumer(BILL_PROCESSED, group=NOTIFY_BILL_REPORTS, title="t", description="t")
    async def handle(messages: list[Message[BillProcessed]]) -> list[Failed]:
        seen.extend(messages)
        return []

    event = _event()
    broker = _broker(runtime)
    topic = BILL_PROCESSED.name(NS)
    await broker.publish_raw(
        topic,
        [
            (b"b1", event.model_dump_json().encode(), []),
            (b"b1", b"not json at all", []),
            (b"b1", b'{"event_id": "x"}', []),
        ],
    )
    assert await broker.deliver(runtime) == 3

    assert [m.record.offset for m in seen] == [0]
    assert seen[0].event == event
    dead = broker.records(BILL_PROCESSED.dead_letter_name(NS))
    assert [int(dict(r.headers)["x-original-offset"]) for r in dead] == [1, 2]
    assert all(b"BillProcessed validation failed" in dict(r.headers)["x-error"] for r in dead)
    assert [r.value for r in dead] == [b"not json at all", b'{"event_id": "x"}']
    assert _sample(runtime, "billing_messages_processed_total", topic) == 3
    assert _sample(runtime, "billing_messages_dead_lettered_total", topic) == 2
    assert await broker.deliver(runtime) == 0  # nothing comes twice


async def test_what_the_handler_fails_is_dead_lettered_with_its_reason(runtime: Runtime) -> None:
    @runtime.consumer(BILL_PROCESSED, group=NOTIFY_BILL_REPORTS, title="t", description="t")
    async def handle(messages: list[Message[BillProcessed]]) -> list[Failed]:
        return [m.failed("no bill b2 here") for m in messages if m.event.data.bill_id == "b2"]

    broker = _broker(runtime)
    await broker.publish(
        BILL_PROCESSED.name(NS), BILL_PROCESSED.keyed([_event("b1"), _event("b2")])
    )
    await broker.deliver(runtime)

    [dead] = broker.records(BILL_PROCESSED.dead_letter_name(NS))
    headers = dict(dead.headers)
    assert BillProcessed.model_validate_json(dead.value).data.bill_id == "b2"
    assert dead.key == b"b2"
    assert headers["x-error"] == b"no bill b2 here"
    assert headers["x-failed-by"] == b"notify"
    assert headers["x-original-topic"] == BILL_PROCESSED.name(NS).encode()
    assert headers["correlation_id"] == b"c-b2"


async def test_a_batch_that_raises_comes_again(runtime: Runtime) -> None:
    attempts: list[int] = []

    @runtime.consumer(BILL_PROCESSED, group=NOTIFY_BILL_REPORTS, title="t", description="t")
    async def handle(messages: list[Message[BillProcessed]]) -> list[Failed]:
        attempts.append(len(messages))
        if len(attempts) == 1:
            msg = "the database went away"
            raise ConnectionError(msg)
        return []

    broker = _broker(runtime)
    await broker.publish(BILL_PROCESSED.name(NS), BILL_PROCESSED.keyed([_event()]))
    with pytest.raises(ConnectionError):
        await broker.deliver(runtime)
    assert await broker.deliver(runtime) == 1
    assert attempts == [1, 1]
    assert broker.records(BILL_PROCESSED.dead_letter_name(NS)) == []


def test_a_group_or_payload_the_channel_does_not_declare_fails_at_registration(
    runtime: Runtime,
) -> None:
    with pytest.raises(ChannelError, match="billing-rating is not declared"):
        runtime.consumer(BILL_PROCESSED, group=RATING, title="t", description="t")
    with pytest.raises(ChannelError, match="UsageRecorded is not carried by"):
        declare_output(runtime, CHARGE_RATED, payload=UsageRecorded)
    assert runtime.consumers == []
