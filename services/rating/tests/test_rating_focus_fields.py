"""What a rated charge carries for the customer's FOCUS dataset (invoicing's
service/focus_export.py): the record's charge period end, account name, service category and
SKU price id, and its public on-demand price in the invoicing currency. Hand-computed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from test_rating_fx import EUR_MARKUP_10, RATES, usage

from billing_rating.domain.rating import rate_usage
from billing_rating.domain.rerating import corrections

D = Decimal
DAY = datetime(2024, 9, 10, 12, tzinfo=UTC)


def test_the_public_price_is_converted_like_the_price() -> None:
    record = usage(
        "110.00",
        DAY,
        list_cost=D("150.00"),
        sub_account_name="Pioneer Apollo",
        service_category="Compute",
        sku_price_id="SKU-1.OnDemand",
    ).model_copy(update={"charge_period_end": datetime(2024, 9, 10, 13, tzinfo=UTC)})
    charge = rate_usage(record, EUR_MARKUP_10, RATES).charge
    # list 150.00 USD x 0.90 = 135.00 EUR (the price: 110.00 x 0.90 x 1.10 = 108.90 EUR)
    assert (charge.list_cost, charge.price) == (D("135.0000"), D("108.9"))
    assert charge.charge_period_end == datetime(2024, 9, 10, 13, tzinfo=UTC)
    assert (charge.sub_account_name, charge.service_category, charge.sku_price_id) == (
        "Pioneer Apollo",
        "Compute",
        "SKU-1.OnDemand",
    )


def test_the_on_demand_cost_is_the_public_price_before_the_list_cost() -> None:
    record = usage("110.00", DAY, list_cost=D("150.00"), on_demand_cost=D("140.00"))
    # 140.00 x 0.90 = 126.00 EUR
    assert rate_usage(record, EUR_MARKUP_10, RATES).charge.list_cost == D("126.0000")


def test_no_public_price_and_a_correction_of_the_price_carries_none_again() -> None:
    assert rate_usage(usage("110.00", DAY), EUR_MARKUP_10, RATES).charge.list_cost is None
    first = rate_usage(usage("110.00", DAY, list_cost=D("150")), EUR_MARKUP_10, RATES).charge
    again = first.model_copy(update={"price": D("120.00")})
    [correction] = corrections([first], [again])
    # re-rating moves our price by 120.00 - 108.90 = 11.10; the public price did not move
    assert (correction.price, correction.list_cost) == (D("11.10"), D(0))
