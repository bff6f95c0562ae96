"""The rating service on the real broker and database: charges out, bad input dead-lettered,
health and metrics served."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from faststream.asgi import AsgiFastStream
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.store import ACCOUNTS, CUSTOMERS
from billing_devtools.testing import TopicReader, eventually, produce
from billing_rating.app import create_app
from billing_rating.settings import RatingSettings
from billing_runtime.dlq import list_dead_letters, replay_dead_letters
from billing_schemas.events import ChargeCategory, ChargeRated, LineType, UsageRecord, UsageRecorded
from billing_schemas.topics import Topic, dead_letter_name, topic_name

if TYPE_CHECKING:
    from conftest import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
async def app(
    infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> AsyncIterator[AsgiFastStream]:
    await mongo_db[ACCOUNTS].insert_one({"_id": "AWS:111", "customer_id": "acme"})
    await mongo_db[CUSTOMERS].insert_one(
        {
            "_id": "acme",
            "currency": "USD",
            "price_list": {"id": "p", "version": 2, "markup_percent": "10"},
        }
    )
    settings = RatingSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        mongodb_url=infra.mongodb_url,
        mongodb_database=namespace,
        topic_namespace=f"{namespace}.",
    )
    application = create_app(settings)
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


def _usage(account: str, cost: str, rid: str) -> bytes:
    record = UsageRecord(
        record_id=rid,
        provider="AWS",
        billing_account_id="999",
        sub_account_id=account,
        billing_period="2024-09",
        charge_period_start=datetime(2024, 9, 1, tzinfo=UTC),
        charge_period_end=datetime(2024, 9, 1, 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name="Amazon EC2",
        currency="USD",
        billed_cost=Decimal(cost),
    )
    return (
        UsageRecorded.create(record, source="test", correlation_id="c").model_dump_json().encode()
    )


async def test_usage_is_rated_and_what_cannot_be_is_dead_lettered_byte_for_byte(
    app: AsgiFastStream, infra: Infra, namespace: str
) -> None:
    ns = f"{namespace}."
    garbage = b"\x00 this is not an event"
    unknown = _usage("222", "1", "r-unknown")
    async with (
        TopicReader(infra.kafka_bootstrap_servers, topic_name(Topic.CHARGE_RATED, ns)) as charges,
        TopicReader(
            infra.kafka_bootstrap_servers, dead_letter_name(Topic.USAGE_RECORDED, ns)
        ) as dlq,
    ):
        await produce(
            infra.kafka_bootstrap_servers,
            topic_name(Topic.USAGE_RECORDED, ns),
            [(b"111", _usage("111", "2.50", "r-ok")), (b"x", garbage), (b"222", unknown)],
        )
        [charge] = await charges.wait_for(1)
        dead = await dlq.wait_for(2)

    rated = ChargeRated.model_validate_json(charge.value)
    assert (rated.data.charge_id, rated.data.price, rated.data.cost) == (
        "r-ok",
        Decimal("2.750"),
        Decimal("2.50"),
    )
    assert charge.key == b"acme"
    by_value = {r.value: dict(r.headers) for r in dead}
    assert set(by_value) == {garbage, unknown}
    assert b"UsageRecorded validation failed" in by_value[garbage]["x-error"]
    assert (
        by_value[unknown]["x-error"]
        == b"no customer owns account 'AWS:222': add it to the catalog, then replay"
    )
    assert by_value[unknown]["x-original-topic"] == topic_name(Topic.USAGE_RECORDED, ns).encode()
    assert by_value[unknown]["x-failed-by"] == b"rating"

    # The counters move once the broker has acknowledged the dead letters, which is a moment
    # after this test's reader can already see them: poll until the batch is fully accounted.
    source = topic_name(Topic.USAGE_RECORDED, ns)
    expected = (
        'billing_outcomes_total{outcome="charge_rated",service="rating"} 1.0',
        f'billing_messages_dead_lettered_total{{service="rating",topic="{source}"}} 2.0',
        f'billing_messages_processed_total{{service="rating",topic="{source}"}} 3.0',
    )
    metrics = ""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://rating"
    ) as client:

        async def counted() -> bool:
            nonlocal metrics
            metrics = (await client.get("/metrics")).text
            return all(line in metrics for line in expected)

        await eventually(counted, "the batch's counters on /metrics", within=10)
    for line in expected:
        assert line in metrics


async def test_health_liveness_and_metrics_are_served(app: AsgiFastStream) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://rating"
    ) as client:
        health = await client.get("/health")
        live = await client.get("/live")
        metrics = await client.get("/metrics")
    assert health.status_code == 200
    assert health.json() == {"service": "rating", "ready": True, "kafka": "ok", "mongodb": "ok"}
    assert live.status_code == 204
    assert metrics.status_code == 200
    assert "faststream_received_messages" in metrics.text or "# HELP" in metrics.text


async def test_a_dead_letter_is_rated_after_its_cause_is_fixed_and_replayed_once(
    app: AsgiFastStream, infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    ns = f"{namespace}."
    dlq = dead_letter_name(Topic.USAGE_RECORDED, ns)
    unknown = _usage("333", "4", "r-late-account")
    async with TopicReader(infra.kafka_bootstrap_servers, dlq) as dead:
        await produce(
            infra.kafka_bootstrap_servers, topic_name(Topic.USAGE_RECORDED, ns), [(b"333", unknown)]
        )
        await dead.wait_for(1)
    assert [x.value for x in await list_dead_letters(infra.kafka_bootstrap_servers, dlq)] == [
        unknown
    ]

    # the cause: account 333 was missing from the catalog
    await mongo_db[ACCOUNTS].insert_one({"_id": "AWS:333", "customer_id": "acme"})
    async with TopicReader(
        infra.kafka_bootstrap_servers, topic_name(Topic.CHARGE_RATED, ns)
    ) as charges:
        result = await replay_dead_letters(infra.kafka_bootstrap_servers, dlq, group=f"{ns}replay")
        assert (result.replayed, result.skipped) == (1, [])
        [charge] = await charges.wait_for(1)
    assert ChargeRated.model_validate_json(charge.value).data.charge_id == "r-late-account"
    # replayed once: a second replay has nothing left to send
    again = await replay_dead_letters(infra.kafka_bootstrap_servers, dlq, group=f"{ns}replay")
    assert again.replayed == 0
