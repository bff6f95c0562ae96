"""Rating with period state on the real database: the catalog as ``billing catalog apply``
writes it, tier claims kept once per record, redelivery, two consumers on one customer, FX."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Catalog
from billing_catalog.store import CatalogConflictError, MongoCatalogStore
from billing_rating.adapters.catalog import MongoPricingCatalog
from billing_rating.adapters.memory import InMemoryTierStore
from billing_rating.adapters.rated_store import MongoRatedStore
from billing_rating.adapters.tier_store import CLAIMS, MongoTierStore
from billing_rating.domain.rating import CustomerPricing
from billing_rating.domain.rerating import Emitted
from billing_rating.domain.tiers import Claim
from billing_rating.ports import ClaimConflictError, TierStore
from billing_rating.service.rate_batch import rate_batch
from billing_schemas.events import ChargeCategory, LineType, UsageRecord, UsageRecorded

pytestmark = pytest.mark.integration

D = Decimal

CATALOG: dict[str, Any] = {
    "invoicing_entities": [
        {
            "id": "e",
            "name": "E",
            "address": {"lines": ["x"], "country": "DE"},
            "number_prefix": "E-",
            "email": "e@example.com",
        }
    ],
    "price_lists": [
        {
            "id": "tiered",
            "versions": [
                {
                    "version": 1,
                    "effective_from": "2024-01-01",
                    "currency": "USD",
                    "rules": [
                        {"kind": "markup", "percent": "10"},
                        {
                            "kind": "tiered",
                            "mode": "graduated",
                            "service": "Amazon S3",
                            "tiers": [
                                {"up_to": "100", "unit_price": "0.10"},
                                {"unit_price": "0.05"},
                            ],
                        },
                    ],
                }
            ],
        },
        {"id": "special", "versions": [{"version": 1, "effective_from": "2024-01-01"}]},
    ],
    "fx_rates": [{"base": "USD", "quote": "EUR", "as_of": "2024-09-01", "rate": "0.90"}],
    "customers": [
        {
            "id": "acme",
            "name": "Acme",
            "address": {"lines": ["x"], "country": "DE"},
            "currency": "USD",
            "invoicing_entity": "e",
            "price_list": "tiered",
            "accounts": [
                {"provider": "AWS", "account_id": "1"},
                {"provider": "AWS", "account_id": "2"},
                {"provider": "AWS", "account_id": "3", "price_list": "special"},
            ],
        },
        {
            "id": "euro",
            "name": "Euro GmbH",
            "address": {"lines": ["x"], "country": "DE"},
            "currency": "EUR",
            "invoicing_entity": "e",
            "price_list": {"id": "euro-std", "version": 1, "markup_percent": "10"},
            "rebilling": {"credits": "exclude"},
            "accounts": [{"provider": "AWS", "account_id": "9"}],
        },
    ],
}


def usage(rid: str, account: str, quantity: str, *, service: str = "Amazon S3") -> UsageRecorded:
    record = UsageRecord(
        record_id=rid,
        provider="AWS",
        billing_account_id="999",
        sub_account_id=account,
        billing_period="2024-09",
        charge_period_start=datetime(2024, 9, 5, tzinfo=UTC),
        charge_period_end=datetime(2024, 9, 5, 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name=service,
        currency="USD",
        pricing_quantity=D(quantity),
        billed_cost=D("1.00"),
    )
    return UsageRecorded.create(record, source="t", correlation_id="c")


@pytest.fixture
async def applied(mongo_db: AsyncDatabase[dict[str, Any]]) -> MongoPricingCatalog:
    await MongoCatalogStore(mongo_db).apply(Catalog.model_validate(CATALOG))
    return MongoPricingCatalog(mongo_db)


def prices(batch: Any) -> dict[str, Decimal]:
    return {event.data.charge_id: event.data.price for _, event in batch.charges}


async def test_catalog_apply_carries_price_lists_overrides_policies_and_rates(
    applied: MongoPricingCatalog,
) -> None:
    pricing = await applied.pricing_for(["AWS:1", "AWS:3", "AWS:9", "AWS:404"])
    assert sorted(pricing) == ["AWS:1", "AWS:3", "AWS:9"]
    one, three, nine = pricing["AWS:1"], pricing["AWS:3"], pricing["AWS:9"]
    assert isinstance(one, CustomerPricing)
    assert isinstance(three, CustomerPricing)
    assert isinstance(nine, CustomerPricing)
    assert (one.customer_id, one.currency, one.price_list.id) == ("acme", "USD", "tiered")
    assert (three.customer_id, three.price_list.id) == ("acme", "special")  # account override
    assert (nine.currency, nine.price_list.id, nine.rebilling.credits) == (
        "EUR",
        "euro-std",
        "exclude",
    )
    table = await applied.fx_rates([("USD", "EUR")])
    assert table.quote("USD", "EUR", date(2024, 9, 30)).rate == D("0.90")


async def test_tiers_run_across_accounts_and_batches_and_a_redelivery_changes_nothing(
    applied: MongoPricingCatalog, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    tiers, kept = MongoTierStore(mongo_db), MongoRatedStore(mongo_db)
    first = await rate_batch([usage("a", "1", "60"), usage("b", "2", "60")], applied, tiers, kept)
    # a: 60 x 0.10 = 6.00; b: 40 x 0.10 + 20 x 0.05 = 5.00 (account 2, same customer)
    assert prices(first) == {"a": D("6.00"), "b": D("5.00")}
    second = await rate_batch([usage("c", "1", "10")], applied, tiers, kept)
    assert prices(second) == {"c": D("0.50")}  # 10 x 0.05
    # the first batch again (its offsets were not committed, say): the same charges
    again = await rate_batch([usage("a", "1", "60"), usage("b", "2", "60")], applied, tiers, kept)
    assert prices(again) == prices(first)
    assert await mongo_db[CLAIMS].count_documents({}) == 3
    # each record kept once, with the price first charged, in the order first rated
    kept_records = await kept.period("2024-09")
    assert [(r.record.record_id, r.emitted) for r in kept_records] == [
        ("a", Emitted(D("6.00"), 1)),
        ("b", Emitted(D("5.00"), 1)),
        ("c", Emitted(D("0.50"), 1)),
    ]


async def test_two_consumers_rating_one_customer_at_once_never_share_a_tier_place(
    applied: MongoPricingCatalog, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    left = [usage(f"l{i}", "1", "30") for i in range(4)]
    right = [usage(f"r{i}", "2", "30") for i in range(4)]
    results = await asyncio.gather(
        rate_batch(left, applied, MongoTierStore(mongo_db), MongoRatedStore(mongo_db)),
        rate_batch(right, applied, MongoTierStore(mongo_db), MongoRatedStore(mongo_db)),
    )
    total = sum((sum(prices(r).values(), D(0)) for r in results), D(0))
    # 8 x 30 = 240 units in the period: 100 x 0.10 + 140 x 0.05 = 10 + 7 = 17, whoever went first
    assert total == D("17")
    ends = sorted([doc["end"] async for doc in mongo_db[CLAIMS].find({})], key=Decimal)
    assert ends == [str(30 * n) for n in range(1, 9)]


async def test_bad_or_unpriceable_records_are_named_and_the_rest_rated(
    applied: MongoPricingCatalog, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    no_quantity = usage("q", "1", "1").data.model_copy(update={"pricing_quantity": None})
    in_eur = usage("fx", "9", "1", service="Amazon EC2")
    batch = await rate_batch(
        [
            UsageRecorded.create(no_quantity, source="t", correlation_id="c"),
            usage("ok", "1", "1", service="Amazon EC2"),
            usage("x", "404", "1"),
            in_eur,
        ],
        applied,
        MongoTierStore(mongo_db),
        MongoRatedStore(mongo_db),
    )
    # ok: markup 10% on 1.00; fx: 1.00 USD x 0.90 = 0.90 EUR x 1.10 = 0.99 EUR at the rate recorded
    assert prices(batch) == {"ok": D("1.1"), "fx": D("0.99")}
    [charge] = [e.data for _, e in batch.charges if e.data.charge_id == "fx"]
    assert (charge.currency, charge.fx_rate, charge.fx_rate_date) == (
        "EUR",
        D("0.90"),
        date(2024, 9, 1),
    )
    assert batch.failures == [
        (
            0,
            "record q: rule tiered@*/Amazon S3/* prices by quantity but the record has no "
            "pricing quantity",
        ),
        (2, "no customer owns account 'AWS:404': add it to the catalog, then replay"),
    ]


async def test_an_effective_price_list_version_cannot_be_reapplied_changed(
    applied: MongoPricingCatalog, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    del applied
    tiered, special = CATALOG["price_lists"]
    markup_1 = [{"kind": "markup", "percent": "1"}]

    def with_special(*versions: dict[str, Any]) -> Catalog:
        lists = [tiered, {"id": "special", "versions": list(versions)}]
        return Catalog.model_validate({**CATALOG, "price_lists": lists})

    repo = MongoCatalogStore(mongo_db)
    edited = with_special({"version": 1, "effective_from": "2024-01-01", "rules": markup_1})
    with pytest.raises(CatalogConflictError, match="'special' version 1 is effective since"):
        await repo.apply(edited, today=date(2024, 9, 1))
    # a new version from a later date is how prices change
    superseded = with_special(
        special["versions"][0],
        {"version": 2, "effective_from": "2024-10-01", "rules": markup_1},
    )
    result = await repo.apply(superseded, today=date(2024, 9, 1))
    assert result.price_lists == 2  # tiered (unchanged) and special
    stored = await mongo_db["catalog_price_lists"].find_one({"_id": "special"})
    assert stored is not None
    assert [v["version"] for v in stored["versions"]] == [1, 2]


@pytest.mark.parametrize("kind", ["memory", "mongo"])
async def test_tier_stores_refuse_a_place_taken_and_keep_a_records_claim(
    kind: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    store: TierStore = InMemoryTierStore() if kind == "memory" else MongoTierStore(mongo_db)
    await store.save([Claim("k", "a", 1, D(0), D("2.5")), Claim("k", "b", 2, D("2.5"), D(4))])
    with pytest.raises(ClaimConflictError):
        await store.save([Claim("k", "c", 2, D("2.5"), D(3))])
    state = await store.load([("k", "a"), ("k", "z")])
    assert state.claims[("k", "a")] == Claim("k", "a", 1, D(0), D("2.5"))
    assert ("k", "z") not in state.claims
    assert state.total("k") == D(4)


@pytest.mark.parametrize("kind", ["memory", "mongo"])
async def test_tier_stores_tell_a_stale_head_from_a_record_claimed_twice(
    kind: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    def pair() -> tuple[TierStore, TierStore]:
        if kind == "memory":
            shared = InMemoryTierStore()
            return shared, shared
        return MongoTierStore(mongo_db), MongoTierStore(mongo_db)

    writer, reader = pair()
    # 37 places of 1 unit each: place n holds [n - 1, n)
    await writer.save([Claim("k", f"r{n}", n, D(n - 1), D(n)) for n in range(1, 38)])
    # a store that never saw the key finds its head (by probing places 1, 2, 4 ... 64, then 48...)
    state = await reader.load([("k", "new")], records=False)
    assert (state.total("k"), state.heads["k"].seq) == (D(37), 37)
    # the writer goes on; the reader's head (37) is stale: its place 38 is refused as taken
    await writer.save([Claim("k", "r38", 38, D(37), D(38))])
    with pytest.raises(ClaimConflictError) as taken:
        await reader.save([Claim("k", "new", 38, D(37), D(39))])
    assert not taken.value.record_claimed
    state = await reader.load([("k", "new")], records=False)
    assert state.total("k") == D(38)
    # r5 rated again as if new (a redelivery): refused, and then found with records=True
    with pytest.raises(ClaimConflictError) as twice:
        await reader.save([Claim("k", "r5", 39, D(38), D(39))])
    assert twice.value.record_claimed
    state = await reader.load([("k", "r5")], records=True)
    assert state.claims[("k", "r5")] == Claim("k", "r5", 5, D(4), D(5))
    assert state.total("k") == D(38)


@pytest.mark.parametrize("pairs_pushed_down", [None, True, False])
async def test_a_batchs_own_claims_are_found_by_pair_look_ups_and_by_one_query_alike(
    pairs_pushed_down: bool | None, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    """Per (key, record id) equality (where the database answers it from an index) or one
    ``$in`` query (FerretDB over SQLite): the same claims, and only the batch's own."""
    stored = [Claim(k, f"{k}-r{n}", n, D(n - 1), D(n)) for k in ("k1", "k2") for n in range(1, 41)]
    await MongoTierStore(mongo_db).save(stored)
    wanted = [(c.key, c.record_id) for c in stored[::2]]  # 40 of them: two rounds of look-ups
    # a record of one key asked under the other: not that key's claim
    wanted += [("k1", "k2-r3"), ("k2", "k1-r5"), ("k1", "missing")]
    store = MongoTierStore(mongo_db, pairs_pushed_down=pairs_pushed_down)
    state = await store.load(wanted, records=True)
    assert state.claims == {(c.key, c.record_id): c for c in stored[::2]} | {
        ("k1", "k1-r40"): stored[39],  # the heads, found by probing places
        ("k2", "k2-r40"): stored[79],
    }
    assert (state.total("k1"), state.total("k2")) == (D(40), D(40))
