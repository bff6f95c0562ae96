"""One contract for each store port, run against the in-memory fake and MongoDB (FerretDB)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from webhooks_test_support import T0, endpoint, finalized, paid, payment

from billing_webhooks.adapters.memory import InMemoryDeliveries, InMemoryEndpoints
from billing_webhooks.adapters.mongo import MongoDeliveries, MongoEndpoints
from billing_webhooks.domain import endpoints as rules
from billing_webhooks.domain.deliveries import (
    Attempt,
    Delivery,
    DeliveryState,
    RetryPolicy,
    abandon,
    after_attempt,
    deliveries_for,
)
from billing_webhooks.domain.messages import message_for
from billing_webhooks.ports import DeliveryStore, EndpointStore

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

POLICY = RetryPolicy(base=timedelta(seconds=5), maximum=timedelta(minutes=1), max_attempts=3)


def _deliveries(*customers: str) -> list[Delivery]:
    ep = endpoint("ep_1")
    found: list[Delivery] = []
    for customer in customers:
        for event in (finalized(customer), payment(customer), paid(customer)):
            found += deliveries_for(message_for(event), [ep], T0, POLICY)
    return found


def _attempt(delivery: Delivery, status: int | None, seconds: float) -> Attempt:
    return Attempt(
        delivery_id=delivery.delivery_id,
        endpoint_id=delivery.endpoint_id,
        message_id=delivery.message_id,
        number=delivery.attempts + 1,
        at=T0 + timedelta(seconds=seconds),
        status_code=status,
        error=None if status == 200 else "ConnectError: refused",
        duration_ms=3.25,
    )


class StoresContract:
    """What every pair of webhook stores does; subclassed per backend, each giving ``stores``."""

    async def test_endpoints_are_added_read_listed_by_customer_and_saved(
        self, stores: tuple[EndpointStore, DeliveryStore]
    ) -> None:
        endpoints, _ = stores
        ops = endpoint("ep_ops")
        acme = replace(endpoint("ep_acme", customer="acme"), created_at=T0 + timedelta(seconds=1))
        await endpoints.add(acme)
        await endpoints.add(ops)
        assert await endpoints.get("ep_ops") == ops
        assert await endpoints.get("ep_nope") is None
        assert [e.endpoint_id for e in await endpoints.all()] == ["ep_ops", "ep_acme"]
        assert await endpoints.all("acme") == [acme]
        disabled = rules.disable(rules.after_failure(acme, T0, timedelta(days=1)), T0, "why")
        await endpoints.save(disabled)
        assert await endpoints.get("ep_acme") == disabled

    async def test_a_delivery_is_queued_once_however_often_its_event_is_consumed(
        self, stores: tuple[EndpointStore, DeliveryStore]
    ) -> None:
        _, deliveries = stores
        first = _deliveries("acme")
        assert await deliveries.enqueue(first) == first
        assert await deliveries.enqueue([*first, *_deliveries("globex")]) == _deliveries("globex")
        assert sorted(d.delivery_id for d in await deliveries.pending()) == sorted(
            d.delivery_id for d in first + _deliveries("globex")
        )
        # finished, then consumed again: not queued again
        done = after_attempt(first[0], _attempt(first[0], 200, 1), POLICY)
        await deliveries.record(done, _attempt(first[0], 200, 1))
        assert await deliveries.enqueue(first) == []
        assert first[0].delivery_id not in {d.delivery_id for d in await deliveries.pending()}

    async def test_a_claim_holds_a_delivery_until_its_lease_ends_or_it_is_recorded(
        self, stores: tuple[EndpointStore, DeliveryStore]
    ) -> None:
        _, deliveries = stores
        [delivery, *_] = _deliveries("acme")
        await deliveries.enqueue([delivery])
        assert await deliveries.claim(delivery, T0, T0 + timedelta(seconds=60))
        assert not await deliveries.claim(delivery, T0 + timedelta(seconds=30), T0)
        assert await deliveries.claim(
            delivery, T0 + timedelta(seconds=61), T0 + timedelta(seconds=120)
        )
        retried = after_attempt(delivery, _attempt(delivery, 503, 62), POLICY)
        await deliveries.record(retried, _attempt(delivery, 503, 62))
        # recorded as still pending: the lease is released for the retry
        assert await deliveries.claim(retried, T0 + timedelta(seconds=63), T0 + timedelta(days=1))
        done = abandon(retried, T0 + timedelta(seconds=64), "endpoint disabled")
        await deliveries.record(done, None)
        assert not await deliveries.claim(done, T0 + timedelta(days=2), T0 + timedelta(days=3))

    async def test_the_log_keeps_every_attempt_and_the_last_state(
        self, stores: tuple[EndpointStore, DeliveryStore]
    ) -> None:
        _, deliveries = stores
        queued = _deliveries("acme")
        await deliveries.enqueue(queued)
        delivery = queued[1]
        failed = _attempt(delivery, None, 10)
        after_fail = after_attempt(delivery, failed, POLICY)
        await deliveries.record(after_fail, failed)
        ok = _attempt(after_fail, 200, 20)
        delivered = after_attempt(after_fail, ok, POLICY)
        await deliveries.record(delivered, ok)
        assert await deliveries.attempts(delivery.delivery_id) == [failed, ok]
        assert await deliveries.get(delivery.delivery_id) == delivered
        assert delivered.state is DeliveryState.DELIVERED
        assert delivered.attempts == 2
        pending_ids = {d.delivery_id for d in await deliveries.pending()}
        assert pending_ids == {queued[0].delivery_id, queued[2].delivery_id}
        listed = await deliveries.deliveries(endpoint_id="ep_1", limit=2)
        assert len(listed) == 2
        assert await deliveries.deliveries(endpoint_id="ep_other") == []
        everything = await deliveries.deliveries(limit=10)
        assert {d.delivery_id for d in everything} == {d.delivery_id for d in queued}


class TestInMemoryStores(StoresContract):
    @pytest.fixture
    def stores(self) -> tuple[EndpointStore, DeliveryStore]:
        return InMemoryEndpoints(), InMemoryDeliveries()


@pytest.mark.integration
class TestMongoStores(StoresContract):
    @pytest.fixture
    async def stores(
        self, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> tuple[EndpointStore, DeliveryStore]:
        deliveries = MongoDeliveries(mongo_db)
        await deliveries.ensure_indexes()
        return MongoEndpoints(mongo_db), deliveries
