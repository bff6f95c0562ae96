"""A restated bill through the running rating service, on the real broker and database: the
reversal is charged minus its original (read back from ``rating_records``), takes its tier
place back (``rating_tier_places``), and the charges published add up to a fresh rating of the
latest version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from faststream.asgi import AsgiFastStream
from pymongo.asynchronous.database import AsyncDatabase
from rating_restatement_example import B2, RULES, A, B, C, events, fresh_total, pricing, reversal

from billing_catalog.store import ACCOUNTS, CUSTOMERS
from billing_devtools.testing import TopicReader, produce
from billing_rating.app import create_app
from billing_rating.settings import RatingSettings
from billing_schemas.events import ChargeRated, UsageRecord
from billing_schemas.topics import Topic, topic_name

if TYPE_CHECKING:
    from conftest import Infra

pytestmark = pytest.mark.integration

RULE = RULES["graduated-quantity"]


@pytest.fixture
async def app(
    infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> AsyncIterator[AsgiFastStream]:
    await mongo_db[ACCOUNTS].insert_one({"_id": "AWS:111", "customer_id": "acme"})
    await mongo_db[CUSTOMERS].insert_one(
        {
            "_id": "acme",
            "currency": "USD",
            "price_list": pricing(RULE).price_list.model_dump(mode="json"),
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


async def _send(infra: Infra, namespace: str, records: list[UsageRecord]) -> None:
    await produce(
        infra.kafka_bootstrap_servers,
        topic_name(Topic.USAGE_RECORDED, f"{namespace}."),
        [(b"111", e.model_dump_json().encode()) for e in events(records)],
    )


async def test_a_restated_bill_is_charged_as_its_latest_version_by_the_running_service(
    app: AsgiFastStream, infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    del app
    ns = f"{namespace}."
    async with TopicReader(
        infra.kafka_bootstrap_servers, topic_name(Topic.CHARGE_RATED, ns)
    ) as out:
        await _send(infra, namespace, [A, B, C])
        await out.wait_for(3)
        # the restatement: b changed (b2 plus b's reversal), c dropped (c's reversal); on the
        # old code b~rev was dead-lettered and these 7 charges never came
        await _send(infra, namespace, [B2, reversal(B), reversal(C)])
        records = await out.wait_for(7)  # + b2, b~rev, c~rev and b~rev:tiers
    charges = {
        (c := ChargeRated.model_validate_json(r.value).data).charge_id: c.price for r in records
    }
    assert charges == {
        "a": Decimal(8),
        "b": Decimal(3),
        "c": Decimal("1.5"),
        "b2": Decimal("1.5"),
        "b~rev": Decimal(-3),
        "b~rev:tiers": Decimal(1),
        "c~rev": Decimal("-1.5"),
    }
    assert sum(charges.values()) == fresh_total([A, B2], pricing(RULE)) == Decimal("10.5")
    # the places taken back are stored as such
    places = {d["record_id"]: d async for d in mongo_db["rating_tier_places"].find({})}
    assert (places["b~rev"]["reverses"], places["b~rev"]["start"], places["b~rev"]["end"]) == (
        "b",
        "180",
        "140",
    )
