"""The :class:`~billing_runtime.audit.AuditTrail` port's contract, run against the in-memory
fake and the Kafka trail on the real broker (what the webhooks service's audit consumer reads
from ``billing.audit.recorded.v1``): each entry is recorded whole under the action's own id, or
without one under an id of its content and minute, so that an action retried within the
minute is one entry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import pytest

from billing_devtools.testing import TopicReader
from billing_runtime.audit import (
    AuditTrail,
    InMemoryAuditTrail,
    KafkaAuditTrail,
    default_audit_id,
)
from billing_runtime.kafka import EventPublisher
from billing_schemas.channels import AUDIT_RECORDED
from billing_schemas.events import AuditEntry

if TYPE_CHECKING:
    from conftest import Infra

READ_WITHIN_SECONDS = 8.0

PAYMENT = AuditEntry(
    action="payment.recorded",
    actor="user:ops@cumulus.example",
    subject="invoice:CUM-2024-0001",
    customer_id="acme",
    summary="Payment of 105.33 EUR recorded on CUM-2024-0001",
    before={"outstanding": "105.33", "status": "finalized"},
    after={"outstanding": "0.00", "status": "paid"},
)
USER = AuditEntry(
    action="user.added",
    actor="cli:root",
    subject="user:lee@contoso.example",
    summary="User lee@contoso.example added (customer contoso)",
    after={"email": "lee@contoso.example", "customer": "contoso"},
)


class TrailWorld(Protocol):
    """An audit trail and what it recorded."""

    @property
    def trail(self) -> AuditTrail:
        """The trail under test."""
        ...

    async def recorded(self, count: int) -> list[tuple[str, AuditEntry]]:
        """``(audit id, entry)`` of everything recorded, once ``count`` are there."""
        ...


class MemoryWorld:
    def __init__(self) -> None:
        self.fake = InMemoryAuditTrail()

    @property
    def trail(self) -> AuditTrail:
        return self.fake

    async def recorded(self, count: int) -> list[tuple[str, AuditEntry]]:
        del count  # recorded when record() returned
        return list(self.fake.entries)


class KafkaWorld:
    def __init__(self, bootstrap_servers: str, namespace: str) -> None:
        self.publisher = EventPublisher(bootstrap_servers, "billing-contract")
        self._bootstrap_servers = bootstrap_servers
        self._namespace = f"{namespace}."
        self._trail = KafkaAuditTrail(
            self.publisher, self._namespace, "contract", bootstrap_servers
        )

    @property
    def trail(self) -> AuditTrail:
        return self._trail

    async def recorded(self, count: int) -> list[tuple[str, AuditEntry]]:
        topic = AUDIT_RECORDED.name(self._namespace)
        async with TopicReader(self._bootstrap_servers, topic) as reader:
            records = await reader.wait_for(count, READ_WITHIN_SECONDS)
        events = [(r.key, AUDIT_RECORDED.decode(r.value)) for r in records]
        for key, event in events:  # keyed by customer, else subject: one customer's in order
            assert key == (event.data.customer_id or event.data.subject).encode()
        return [(event.event_id, event.data) for _, event in events]


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
async def world(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[TrailWorld]:
    if request.param == "memory":
        yield MemoryWorld()
        return
    # only this parameter needs the broker (the namespace fixture then deletes its topics)
    infra: Infra = request.getfixturevalue("infra")
    kafka = KafkaWorld(infra.kafka_bootstrap_servers, namespace)
    await kafka.publisher.start()
    try:
        yield kafka
    finally:
        await kafka.publisher.stop()


def _ids_now(entry: AuditEntry, before: datetime) -> set[str]:
    """The content ids ``entry`` may have if recorded between ``before`` and now (a minute may
    have turned meanwhile)."""
    return {default_audit_id(entry, before), default_audit_id(entry, datetime.now(UTC))}


async def test_an_entry_is_recorded_whole_under_the_actions_own_id(world: TrailWorld) -> None:
    await world.trail.record(PAYMENT, audit_id="payment:pay_0001")
    await world.trail.record(USER, audit_id="user:lee@contoso.example:added")

    recorded = await world.recorded(2)

    assert sorted(recorded, key=lambda r: r[0]) == [
        ("payment:pay_0001", PAYMENT),
        ("user:lee@contoso.example:added", USER),
    ]


async def test_without_an_id_the_same_action_within_a_minute_is_one_id(
    world: TrailWorld,
) -> None:
    started = datetime.now(UTC)
    await world.trail.record(PAYMENT)
    await world.trail.record(PAYMENT)  # retried
    await world.trail.record(USER)

    recorded = await world.recorded(3)

    payment_ids = [audit_id for audit_id, entry in recorded if entry == PAYMENT]
    [user_id] = [audit_id for audit_id, entry in recorded if entry == USER]
    assert len(payment_ids) == 2
    # one id unless a minute turned between the two (then each is its minute's)
    assert set(payment_ids) <= _ids_now(PAYMENT, started)
    assert user_id in _ids_now(USER, started)
    assert user_id not in payment_ids
