"""Rating's :class:`~billing_rating.ports.ChargePublisher` port, one contract run against the
in-memory fake (``adapters/memory.py``) and the Kafka adapter on the real broker: every charge
reaches the charge stream whole (its amounts exact to the last digit), keyed by its customer,
in the order published per customer; an empty batch publishes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

import pytest

from billing_devtools.testing import read_keyed
from billing_rating.adapters.charge_publisher import KafkaChargePublisher
from billing_rating.adapters.memory import InMemoryChargePublisher
from billing_rating.ports import ChargePublisher
from billing_runtime.kafka import EventPublisher, ensure_topics
from billing_schemas.channels import CHARGE_RATED
from billing_schemas.events import (
    ChargeCategory,
    ChargeRated,
    ChargeStreamEvent,
    LineType,
    RatedCharge,
)

if TYPE_CHECKING:
    from conftest import Infra

READ_WITHIN_SECONDS = 8.0


@dataclass(frozen=True)
class Published:
    """One event as a reader of the charge stream gets it; ``key`` None where the side keeps
    none (the fake keeps the charges only)."""

    key: str | None
    event: ChargeStreamEvent


class World(Protocol):
    """The publisher under test and a reader of the charge stream."""

    @property
    def publisher(self) -> ChargePublisher: ...

    async def read(self, count: int) -> list[Published]:
        """Every event of the charge stream once ``count`` arrived, in order within a key."""
        ...


class FakeWorld:
    def __init__(self) -> None:
        self.fake = InMemoryChargePublisher()

    @property
    def publisher(self) -> ChargePublisher:
        return self.fake

    async def read(self, count: int) -> list[Published]:
        del count  # everything is there once published
        return [Published(None, charge) for charge in self.fake.published]


class KafkaWorld:
    def __init__(self, bootstrap_servers: str, namespace: str) -> None:
        self.producer = EventPublisher(bootstrap_servers, "rating-contract")
        self._publisher = KafkaChargePublisher(self.producer, namespace)
        self._bootstrap_servers = bootstrap_servers
        self._topic = CHARGE_RATED.name(namespace)

    @property
    def publisher(self) -> ChargePublisher:
        return self._publisher

    async def start(self) -> None:
        await ensure_topics(self._bootstrap_servers, [self._topic])
        await self.producer.start()

    async def read(self, count: int) -> list[Published]:
        read = await read_keyed(
            self._bootstrap_servers, self._topic, CHARGE_RATED.decode, count, READ_WITHIN_SECONDS
        )
        return [Published(key, event) for key, event in read]


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
async def world(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[World]:
    if request.param == "memory":
        yield FakeWorld()
        return
    infra: Infra = request.getfixturevalue("infra")  # the namespace fixture deletes the topic
    kafka = KafkaWorld(infra.kafka_bootstrap_servers, namespace)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.producer.stop()


def _charge(record_id: str, customer: str, price: str, currency: str = "EUR") -> ChargeRated:
    charge = RatedCharge(
        charge_id=record_id,
        record_id=record_id,
        customer_id=customer,
        provider="aws",
        sub_account_id=f"{customer}-account",
        billing_period="2024-09",
        charge_period_start=datetime(2024, 9, 3, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name="Amazon S3",
        quantity=Decimal("0.000000001"),
        unit="GB-Mo",
        cost=Decimal("1.23456789"),
        cost_currency="USD",
        price=Decimal(price),
        currency=currency,
        margin=Decimal(price) - Decimal("1.13"),
        fx_rate=Decimal("0.9153"),
        rule="markup 12% (global)",
        rule_ids=["global"],
        price_list_id="standard",
        price_list_version=3,
    )
    return ChargeRated.create(charge, source="contract", correlation_id="bill-1")


def _by_customer(reads: Sequence[Published]) -> dict[str, list[ChargeStreamEvent]]:
    events: dict[str, list[ChargeStreamEvent]] = {}
    for read in reads:
        events.setdefault(read.event.data.customer_id, []).append(read.event)
    return events


async def test_charges_arrive_whole_keyed_by_customer_in_order(world: World) -> None:
    charges = [
        _charge("r1", "acme", "1.38270604"),
        _charge("r2", "globex", "150", currency="JPY"),
        _charge("r3", "acme", "-0.50"),
        _charge("r4", "acme", "0"),
        _charge("r5", "globex", "99999999999.999999"),
    ]

    await world.publisher.publish(charges)
    reads = await world.read(len(charges))

    assert _by_customer(reads) == {
        "acme": [charges[0], charges[2], charges[3]],
        "globex": [charges[1], charges[4]],
    }
    # each charge under its customer's key, where the side keys (Kafka)
    assert all(r.key in (None, r.event.data.customer_id) for r in reads)


async def test_batches_published_one_after_another_stay_in_order_per_customer(
    world: World,
) -> None:
    first = [_charge("a1", "acme", "1"), _charge("g1", "globex", "2")]
    second = [_charge("a2", "acme", "3")]

    await world.publisher.publish(first)
    await world.publisher.publish(second)
    reads = await world.read(3)

    assert _by_customer(reads) == {"acme": [first[0], second[0]], "globex": [first[1]]}


async def test_an_empty_batch_publishes_nothing(world: World) -> None:
    await world.publisher.publish([])
    after = _charge("after", "acme", "1.00")
    await world.publisher.publish([after])  # something to wait for

    assert [r.event for r in await world.read(1)] == [after]
