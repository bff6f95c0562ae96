"""Ingest's publishing ports, :class:`~billing_ingest.ports.UsagePublisher` (loading a bill) and
:class:`~billing_ingest.ports.EventsPublisher` (accepting upstream events), one contract run
against the in-memory fake (``adapters/memory.py``) and the Kafka adapter on the real broker:
which stream each event reaches, whole, under which key (accepted usage by sub-account,
rejected rows by bill), in the order published per key; an empty batch publishes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pytest

from billing_devtools.testing import read_keyed
from billing_ingest.adapters.memory import InMemoryUsagePublisher
from billing_ingest.adapters.publisher import KafkaUsagePublisher
from billing_runtime.kafka import EventPublisher, ensure_topics
from billing_schemas.channels import BILL_PROCESSED, USAGE_RECORDED, USAGE_REJECTED, Channel
from billing_schemas.events import (
    BillProcessed,
    BillSummary,
    ChargeCategory,
    Envelope,
    LineType,
    RejectedRow,
    UsageRecord,
    UsageRecorded,
    UsageRejected,
)

if TYPE_CHECKING:
    from conftest import Infra

READ_WITHIN_SECONDS = 8.0
Stream = Literal["usage", "rejected", "bills"]
CHANNELS: dict[Stream, Channel[Any]] = {
    "usage": USAGE_RECORDED,
    "rejected": USAGE_REJECTED,
    "bills": BILL_PROCESSED,
}


@dataclass(frozen=True)
class Published:
    """One event as a reader of its stream gets it; ``key`` None where the side keeps none."""

    key: str | None
    event: Envelope


class IngestPublisher(Protocol):
    """Both ports at once (one adapter implements both on each side)."""

    async def usage(self, events: list[tuple[str, UsageRecorded]]) -> None: ...

    async def usage_serialized(
        self, records: list[tuple[str, bytes]], correlation_id: str
    ) -> None: ...

    async def rejected(self, events: list[tuple[str, UsageRejected]]) -> None: ...

    async def bill_processed(self, event: BillProcessed) -> None: ...


class World(Protocol):
    """The publisher under test and a reader of each stream it publishes to."""

    @property
    def publisher(self) -> IngestPublisher: ...

    async def read(self, stream: Stream, count: int) -> list[Published]:
        """Every event of the stream once ``count`` arrived, in order within a key."""
        ...


class FakeWorld:
    def __init__(self) -> None:
        self.fake = InMemoryUsagePublisher()

    @property
    def publisher(self) -> IngestPublisher:
        return self.fake

    async def read(self, stream: Stream, count: int) -> list[Published]:
        del count  # everything is there once published
        if stream == "usage":
            return [Published(k, e) for k, e in self.fake.usage_events]
        if stream == "rejected":
            return [Published(k, e) for k, e in self.fake.rejected_events]
        return [Published(None, e) for e in self.fake.processed]  # the fake keeps no key


class KafkaWorld:
    def __init__(self, bootstrap_servers: str, namespace: str) -> None:
        self.producer = EventPublisher(bootstrap_servers, "ingest-contract")
        self._publisher = KafkaUsagePublisher(self.producer, namespace)
        self._bootstrap_servers = bootstrap_servers
        self._namespace = namespace

    @property
    def publisher(self) -> IngestPublisher:
        return self._publisher

    async def start(self) -> None:
        names = [channel.name(self._namespace) for channel in CHANNELS.values()]
        await ensure_topics(self._bootstrap_servers, names)
        await self.producer.start()

    async def read(self, stream: Stream, count: int) -> list[Published]:
        channel = CHANNELS[stream]
        topic = channel.name(self._namespace)
        read = await read_keyed(
            self._bootstrap_servers, topic, channel.decode, count, READ_WITHIN_SECONDS
        )
        return [Published(key, event) for key, event in read]


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
async def world(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[World]:
    if request.param == "memory":
        yield FakeWorld()
        return
    infra: Infra = request.getfixturevalue("infra")  # the namespace fixture deletes the topics
    kafka = KafkaWorld(infra.kafka_bootstrap_servers, namespace)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.producer.stop()


def _usage(record_id: str, sub_account: str, cost: str = "1.25") -> UsageRecorded:
    record = UsageRecord(
        record_id=record_id,
        bill_id="bill-1",
        provider="aws",
        billing_account_id="payer-1",
        sub_account_id=sub_account,
        billing_period="2024-09",
        charge_period_start=datetime(2024, 9, 1, tzinfo=UTC),
        charge_period_end=datetime(2024, 9, 2, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name="Amazon EC2",
        currency="USD",
        billed_cost=Decimal(cost),
        pricing_quantity=Decimal("0.000001"),
        tags={"team": "Zürich"},
    )
    return UsageRecorded.create(record, source="contract", correlation_id="bill-1")


def _rejected(bill_id: str, row: int) -> UsageRejected:
    rejected = RejectedRow(
        bill_id=bill_id,
        file=f"{bill_id}.csv",
        row=row,
        column="BilledCost",
        reason="not a decimal number",
        raw={"BilledCost": "1,5", "Tags": None},
    )
    return UsageRejected.create(rejected, source="contract", correlation_id=bill_id)


def _bill(bill_id: str) -> BillProcessed:
    summary = BillSummary(
        bill_id=bill_id,
        file_name=f"{bill_id}.csv",
        checksum_sha256="a" * 64,
        format="focus-1.0",
        status="partially_rejected",
        billing_periods=["2024-09"],
        rows_read=3,
        rows_accepted=2,
        rows_rejected=1,
        billed_cost_totals={"USD": Decimal("2.50"), "JPY": Decimal("130")},
        first_rejected_rows=[_rejected(bill_id, 4).data],
    )
    return BillProcessed.create(summary, source="contract", correlation_id=bill_id)


def _by_key(reads: list[Published]) -> dict[str | None, list[Envelope]]:
    events: dict[str | None, list[Envelope]] = {}
    for read in reads:
        events.setdefault(read.key, []).append(read.event)
    return events


async def test_serialized_usage_arrives_whole_keyed_by_sub_account_in_order(world: World) -> None:
    events = [_usage(f"r{i}", ["111", "222"][i % 2], f"{i}.0{i}") for i in range(6)]

    await world.publisher.usage_serialized(
        [(e.data.sub_account_id, e.model_dump_json().encode()) for e in events], "bill-1"
    )
    reads = await world.read("usage", len(events))

    assert _by_key(reads) == {
        "111": [e for e in events if e.data.sub_account_id == "111"],
        "222": [e for e in events if e.data.sub_account_id == "222"],
    }


async def test_accepted_events_arrive_whole_keyed_by_sub_account_in_order(world: World) -> None:
    events = [_usage(f"e{i}", ["111", "222"][i % 2]) for i in range(4)]

    await world.publisher.usage([(e.data.sub_account_id, e) for e in events])
    reads = await world.read("usage", len(events))

    assert _by_key(reads) == {
        "111": [events[0], events[2]],
        "222": [events[1], events[3]],
    }


async def test_rejected_rows_arrive_keyed_by_bill_in_order(world: World) -> None:
    rows = [_rejected("bill-1", 2), _rejected("bill-2", 2), _rejected("bill-1", 3)]

    await world.publisher.rejected([(r.data.bill_id or "", r) for r in rows])
    reads = await world.read("rejected", len(rows))

    assert _by_key(reads) == {"bill-1": [rows[0], rows[2]], "bill-2": [rows[1]]}


async def test_a_bills_figures_arrive_whole_on_their_own_stream(world: World) -> None:
    bill = _bill("bill-9")

    await world.publisher.bill_processed(bill)
    reads = await world.read("bills", 1)

    assert [read.event for read in reads] == [bill]
    assert all(read.key in (None, "bill-9") for read in reads)  # where the side keys (Kafka)


async def test_empty_batches_publish_nothing(world: World) -> None:
    await world.publisher.usage([])
    await world.publisher.usage_serialized([], "bill-1")
    await world.publisher.rejected([])
    after = _usage("after", "111")
    await world.publisher.usage([("111", after)])  # something to wait for
    row = _rejected("bill-1", 2)
    await world.publisher.rejected([("bill-1", row)])

    assert await world.read("usage", 1) == [Published("111", after)]
    assert await world.read("rejected", 1) == [Published("bill-1", row)]
