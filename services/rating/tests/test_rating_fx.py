"""Currency conversion with dated catalog rates; the rate used is on the charge. Hand-computed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from billing_catalog.pricing import FxRate, PriceList
from billing_rating.domain.fx import FxError, FxTable
from billing_rating.domain.rating import CustomerPricing, RatingError, rate_usage
from billing_schemas.events import ChargeCategory, LineType, UsageRecord

D = Decimal


def fx(base: str, quote: str, day: str, rate: str) -> FxRate:
    return FxRate(base=base, quote=quote, as_of=date.fromisoformat(day), rate=D(rate))


RATES = FxTable(
    [
        fx("USD", "EUR", "2024-09-01", "0.90"),
        fx("USD", "EUR", "2024-09-15", "0.92"),
        fx("GBP", "EUR", "2024-09-01", "1.20"),
        fx("EUR", "CHF", "2024-08-01", "0.95"),
        fx("CHF", "EUR", "2024-09-01", "1.05"),
    ]
)
EUR_MARKUP_10 = CustomerPricing(
    "acme", "EUR", PriceList.model_validate({"id": "eu", "version": 1, "markup_percent": "10"})
)


def usage(cost: str, day: datetime, currency: str = "USD", **fields: Any) -> UsageRecord:
    return UsageRecord(
        record_id="r1",
        provider="AWS",
        billing_account_id="999",
        sub_account_id="111",
        billing_period=f"{day:%Y-%m}",
        charge_period_start=day,
        charge_period_end=day,
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name="Amazon EC2",
        currency=currency,
        billed_cost=D(cost),
        **fields,
    )


def test_the_latest_rate_dated_on_or_before_the_charge_applies_and_is_recorded() -> None:
    charge = rate_usage(
        usage("110.00", datetime(2024, 9, 10, 12, tzinfo=UTC)), EUR_MARKUP_10, RATES
    ).charge
    # 110.00 USD x 0.90 = 99.00 EUR; x 1.10 = 108.90 EUR; margin 108.90 - 99.00 = 9.90 EUR
    assert (charge.price, charge.currency) == (D("108.9"), "EUR")
    assert (charge.cost, charge.cost_currency) == (D("110.00"), "USD")
    assert charge.margin == D("9.9")
    assert (charge.fx_rate, charge.fx_rate_date) == (D("0.90"), date(2024, 9, 1))


def test_a_later_rate_takes_over_from_its_date() -> None:
    charge = rate_usage(
        usage("110.00", datetime(2024, 9, 15, tzinfo=UTC)), EUR_MARKUP_10, RATES
    ).charge
    # 110.00 x 0.92 = 101.20; x 1.10 = 111.32
    assert charge.price == D("111.32")
    assert charge.fx_rate_date == date(2024, 9, 15)


def test_only_the_opposite_pair_is_inverted() -> None:
    quote = RATES.quote("EUR", "GBP", date(2024, 9, 30))
    # 1 / 1.20 = 0.8333333333333333333333333333 (28 digits); x 120 = 99.99...996, which the
    # 28-digit context rounds to 100.0000000000000000000000000
    assert quote.inverted
    assert quote.rate == D("0.8333333333333333333333333333")
    assert quote.convert(D("120")) == D("100")
    # with both directions on file, the more recent one is used: CHF->EUR of 2024-09-01
    assert RATES.quote("EUR", "CHF", date(2024, 9, 2)).rate == 1 / D("1.05")
    assert RATES.quote("EUR", "CHF", date(2024, 8, 2)).rate == D("0.95")


def test_no_rate_on_or_before_the_date_is_an_error_naming_the_pair() -> None:
    with pytest.raises(FxError, match="no FX rate USD->EUR \\(or EUR->USD\\) dated on or before"):
        RATES.quote("USD", "EUR", date(2024, 8, 31))
    with pytest.raises(RatingError, match="record r1 for customer acme: no FX rate JPY->EUR"):
        rate_usage(usage("1", datetime(2024, 9, 3, tzinfo=UTC), "JPY"), EUR_MARKUP_10, RATES)


def test_price_list_amounts_are_in_the_invoicing_currency() -> None:
    unit_price = PriceList.model_validate(
        {
            "id": "eu-units",
            "versions": [
                {
                    "version": 1,
                    "effective_from": "2024-01-01",
                    "currency": "EUR",
                    "rules": [{"kind": "unit_price", "unit_price": "0.09"}],
                }
            ],
        }
    )
    record = usage("8.50", datetime(2024, 9, 3, tzinfo=UTC), pricing_quantity=D("100"))
    charge = rate_usage(record, CustomerPricing("acme", "EUR", unit_price), RATES).charge
    # 100 x 0.09 EUR = 9.00 EUR; cost 8.50 USD = 7.65 EUR at 0.90; margin 1.35 EUR
    assert (charge.price, charge.margin) == (D("9"), D("1.35"))


def test_a_zero_decimal_currency_keeps_full_precision_on_the_charge() -> None:
    table = FxTable([fx("USD", "JPY", "2024-09-01", "149.53")])
    jpy = CustomerPricing("acme", "JPY", PriceList(id="flat"))
    charge = rate_usage(usage("1.005", datetime(2024, 9, 3, tzinfo=UTC)), jpy, table).charge
    # 1.005 x 149.53 = 150.27765 JPY: rounded to 150 JPY only on the invoice
    assert charge.price == D("150.27765")
