"""The rated store's contract, run against the in-memory fake and MongoDB/FerretDB: what has
been charged for a record (its first copy, plus its corrections, with their savings removed),
which a reversal takes back."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from bson import Binary
from pymongo.asynchronous.database import AsyncDatabase
from rating_rerating_example import usage

from billing_rating.adapters.memory import InMemoryRatedStore
from billing_rating.adapters.rated_store import RECORDS, MongoRatedStore
from billing_rating.domain.rerating import Emitted
from billing_rating.ports import RatedStore
from billing_schemas.events import LineType, RatedCharge, UsageRecord

D = Decimal


def charge(record: UsageRecord, price: str, charge_id: str | None = None) -> RatedCharge:
    """A commitment-covered charge on the on-demand cost: its saving is basis - cost = 4."""
    return RatedCharge(
        charge_id=charge_id or record.record_id,
        record_id=record.record_id,
        customer_id="acme",
        provider=record.provider,
        sub_account_id=record.sub_account_id,
        billing_period=record.billing_period,
        charge_period_start=record.charge_period_start,
        charge_category=record.charge_category,
        line_type=LineType.COMMITMENT_COVERED,
        service_name=record.service_name,
        cost=record.billed_cost if charge_id is None else D(0),
        cost_currency="USD",
        price=D(price),
        currency="USD",
        margin=D(0),
        rule="r",
        basis="on-demand cost",
        basis_amount=record.billed_cost + 4 if charge_id is None else D(1),
        price_list_id="pl",
        price_list_version=1,
    )


@pytest.fixture(params=["memory", "mongo"])
def make_store(
    request: pytest.FixtureRequest,
) -> Callable[[AsyncDatabase[dict[str, Any]]], RatedStore]:
    if request.param == "memory":
        return lambda _db: InMemoryRatedStore()
    return MongoRatedStore


@pytest.mark.integration
async def test_charged_is_the_first_copy_plus_the_corrections_with_their_savings(
    make_store: Callable[[AsyncDatabase[dict[str, Any]]], RatedStore],
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    store = make_store(mongo_db)
    one, two = usage("one", 3, "1", "10", "S3"), usage("two", 4, "1", "20", "S3")
    await store.save_rated([(one, charge(one, "11")), (two, charge(two, "22"))])
    await store.save_rated([(one, charge(one, "99"))])  # a copy in another batch: not read
    await store.save_corrections([charge(one, "2", "one:rerated:1")])
    found = await store.charged("2024-09", "acme", ["one", "absent"])
    # 11 + 2; savings 4 (its charge) + 1 (the correction: basis 1, cost 0)
    assert found == {"one": Emitted(D(13), 2, D(5))}
    assert await store.charged("2024-09", "other", ["one"]) == {}


@pytest.mark.integration
async def test_records_kept_before_the_savings_were_read_with_savings_unknown(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    record = usage("old", 3, "1", "10", "S3")
    line = b"12.5\t" + UsageRecord.__pydantic_serializer__.to_json(record)
    await mongo_db[RECORDS].insert_one(
        {
            "_id": "2024-09|acme|x",
            "period": "2024-09",
            "customer_id": "acme",
            "at": 1,
            "records": Binary(zlib.compress(line)),
        }
    )
    store = MongoRatedStore(mongo_db)
    assert await store.charged("2024-09", "acme", ["old"]) == {"old": Emitted(D("12.5"), 1, None)}
    [kept] = await store.period("2024-09")
    assert (kept.record, kept.emitted) == (record, Emitted(D("12.5"), 1, None))
