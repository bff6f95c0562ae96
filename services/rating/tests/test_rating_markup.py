"""Rating with a per-customer markup: hand-computed examples, and what cannot be rated."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing_catalog.models import PriceList
from billing_rating.adapters.memory import (
    InMemoryPricingCatalog,
    InMemoryRatedStore,
    InMemoryTierStore,
)
from billing_rating.domain.rating import CustomerPricing, RatingError, rate_usage
from billing_rating.service.rate_batch import rate_batch
from billing_schemas.events import ChargeCategory, LineType, UsageRecord, UsageRecorded

PRICING = CustomerPricing(
    customer_id="northwind",
    currency="USD",
    price_list=PriceList.model_validate({"id": "std", "version": 3, "markup_percent": "12.5"}),
)


def _record(
    cost: str, *, account: str = "111", currency: str = "USD", rid: str = "r1"
) -> UsageRecord:
    return UsageRecord(
        record_id=rid,
        provider="AWS",
        billing_account_id="999",
        sub_account_id=account,
        billing_period="2024-09",
        charge_period_start=datetime(2024, 9, 3, tzinfo=UTC),
        charge_period_end=datetime(2024, 9, 3, 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name="Amazon EC2",
        currency=currency,
        billed_cost=Decimal(cost),
    )


@pytest.mark.parametrize(
    ("cost", "price", "margin"),
    [
        ("10.00", "11.25", "1.25"),  # 10 x 1.125
        ("0.00000080000", "0.00000090000", "0.00000010000"),  # sub-cent lines stay exact
        ("-4.00", "-4.50", "-0.50"),  # a credit is marked up like its usage
        ("0", "0", "0"),
    ],
)
def test_price_is_cost_times_one_plus_markup(cost: str, price: str, margin: str) -> None:
    charge = rate_usage(_record(cost), PRICING).charge
    assert charge.cost == Decimal(cost)
    assert charge.price == Decimal(price)
    assert charge.margin == Decimal(margin)
    assert charge.rule == "markup 12.5% on billed cost (global)"
    assert (charge.price_list_id, charge.price_list_version) == ("std", 3)
    assert charge.charge_id == charge.record_id == "r1"


def test_a_record_in_another_currency_without_a_rate_is_refused_not_guessed() -> None:
    with pytest.raises(RatingError, match="no FX rate EUR->USD"):
        rate_usage(_record("1", currency="EUR"), PRICING)


async def test_a_batch_rates_known_accounts_and_names_the_unknown_one() -> None:
    catalog = InMemoryPricingCatalog({"AWS:111": PRICING})
    events = [
        UsageRecorded.create(_record("2", rid="a"), source="t", correlation_id="c"),
        UsageRecorded.create(_record("3", account="222", rid="b"), source="t", correlation_id="c"),
    ]
    kept = InMemoryRatedStore()
    result = await rate_batch(events, catalog, InMemoryTierStore(), kept)
    assert [(key, e.data.charge_id, e.data.price) for key, e in result.charges] == [
        ("northwind", "a", Decimal("2.25"))
    ]
    assert result.charges[0][1].event_id == "charge-rated:a"
    assert result.failures == [
        (1, "no customer owns account 'AWS:222': add it to the catalog, then replay")
    ]
    # the rated record is kept for re-rating, with what it was charged; the unknown one is not
    assert [
        (r.record.record_id, r.customer_id, r.emitted.price) for r in await kept.period("2024-09")
    ] == [("a", "northwind", Decimal("2.25"))]
