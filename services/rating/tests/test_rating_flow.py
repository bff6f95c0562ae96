"""Rating's flow, written once and run twice (the ``flow`` fixture): in memory, and on the real
broker. Recorded usage in, rated charges out keyed by customer; what cannot be rated, and what
is not an event at all, dead-lettered with the reason."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.store import ACCOUNTS, CUSTOMERS
from billing_rating.app import build
from billing_rating.settings import RatingSettings
from billing_schemas.channels import CHARGE_RATED, USAGE_RECORDED
from billing_schemas.events import ChargeCategory, ChargeRated, LineType, UsageRecord, UsageRecorded

if TYPE_CHECKING:
    from conftest import FlowBroker, Infra

pytestmark = pytest.mark.integration


def usage(account: str, cost: str, rid: str) -> UsageRecorded:
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
    return UsageRecorded.create(record, source="test", correlation_id="bill-1")


async def test_usage_is_rated_per_customer_and_the_rest_dead_lettered_with_the_reason(
    flow: FlowBroker, infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    await mongo_db[ACCOUNTS].insert_many(
        [{"_id": "AWS:111", "customer_id": "acme"}, {"_id": "AWS:112", "customer_id": "acme"}]
    )
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
        topic_namespace=flow.namespace,
    )
    await flow.serve(build(settings, flow.publisher()))

    garbage = b"\x00 this is not an event"
    await flow.publish(
        USAGE_RECORDED,
        [usage("111", "2.50", "r-1"), usage("112", "4.00", "r-2"), usage("222", "1", "r-x")],
    )
    await flow.publish_raw(USAGE_RECORDED, b"x", garbage)

    charges = await flow.read(CHARGE_RATED.name(flow.namespace), 2)
    dead = await flow.read(USAGE_RECORDED.dead_letter_name(flow.namespace), 2)

    rated = {ChargeRated.model_validate_json(r.value).data.charge_id: r for r in charges}
    assert sorted(rated) == ["r-1", "r-2"]
    assert {r.key for r in charges} == {b"acme"}
    prices = {cid: ChargeRated.model_validate_json(r.value).data.price for cid, r in rated.items()}
    assert prices == {"r-1": Decimal("2.750"), "r-2": Decimal("4.400")}
    assert dict(charges[0].headers)["correlation_id"] == b"bill-1"
    errors = {r.value: dict(r.headers)["x-error"] for r in dead}
    assert len(errors) == 2
    assert b"UsageRecorded validation failed" in errors.pop(garbage)
    [(value, unknown)] = errors.items()
    assert UsageRecorded.model_validate_json(value).data.record_id == "r-x"
    assert unknown == b"no customer owns account 'AWS:222': add it to the catalog, then replay"
    assert all(dict(r.headers)["x-failed-by"] == b"rating" for r in dead)
