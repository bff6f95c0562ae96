"""Worked examples, one per rule kind, with the arithmetic written out; rule specificity;
price-list versions by date."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from billing_catalog.pricing import MinimumRule, PackageRule, PriceList, TieredRule
from billing_rating.domain.rating import (
    Choices,
    CustomerPricing,
    RatingError,
    is_cumulative,
    plan_usage,
    rate_all,
    rate_usage,
)
from billing_rating.domain.tiers import TierState
from billing_schemas.events import ChargeCategory, LineType, UsageRecord


def record(rid: str = "r1", **fields: Any) -> UsageRecord:
    base: dict[str, Any] = {
        "record_id": rid,
        "provider": "AWS",
        "billing_account_id": "999",
        "sub_account_id": "111",
        "billing_period": "2024-09",
        "charge_period_start": datetime(2024, 9, 3, tzinfo=UTC),
        "charge_period_end": datetime(2024, 9, 3, 1, tzinfo=UTC),
        "charge_category": ChargeCategory.USAGE,
        "line_type": LineType.ON_DEMAND,
        "service_name": "Amazon EC2",
        "currency": "USD",
        "billed_cost": Decimal("1"),
    }
    base.update(fields)
    return UsageRecord.model_validate(base)


def pricing(*rules: dict[str, Any], currency: str | None = "USD") -> CustomerPricing:
    version: dict[str, Any] = {"version": 1, "effective_from": "2024-01-01", "rules": list(rules)}
    if currency:
        version["currency"] = currency
    price_list = PriceList.model_validate({"id": "pl", "versions": [version]})
    return CustomerPricing(customer_id="acme", currency="USD", price_list=price_list)


D = Decimal


def test_markup() -> None:
    charge = rate_usage(
        record(billed_cost=D("20.00")), pricing({"kind": "markup", "percent": "10"})
    ).charge
    # 20.00 x (1 + 10/100) = 22.00
    assert (charge.price, charge.cost, charge.margin) == (D("22"), D("20"), D("2"))
    assert charge.rule == "markup 10% on billed cost (global)"
    assert charge.rule_ids == ["markup@*/*/*"]
    assert (charge.basis, charge.basis_amount) == ("billed cost", D("20.00"))


def test_discount() -> None:
    rule = {"kind": "discount", "percent": "15", "provider": "AWS", "service": "Amazon S3"}
    charge = rate_usage(record(service_name="Amazon S3", billed_cost=D("40")), pricing(rule)).charge
    # 40 x (1 - 15/100) = 34; margin 34 - 40 = -6
    assert (charge.price, charge.margin) == (D("34"), D("-6"))
    assert charge.rule == "discount 15% on billed cost (AWS / Amazon S3)"


def test_per_unit_delta() -> None:
    rule = {"kind": "unit_delta", "delta": "0.002", "sku": "S3-Storage"}
    charge = rate_usage(
        record(sku_id="S3-Storage", billed_cost=D("23.00"), pricing_quantity=D("1000")),
        pricing(rule),
    ).charge
    # 23.00 + 1000 x 0.002 = 25.00
    assert charge.price == D("25")
    assert charge.rule == "0.002 per unit added on billed cost (S3-Storage)"


def test_fixed_unit_price_ignores_what_the_provider_charged() -> None:
    rule = {"kind": "unit_price", "unit_price": "0.09", "sku": "DT-Out", "region": "eu-west-1"}
    charge = rate_usage(
        record(
            sku_id="DT-Out", region="eu-west-1", billed_cost=D("8.50"), pricing_quantity=D("100")
        ),
        pricing(rule),
    ).charge
    # 100 x 0.09 = 9.00; margin 9.00 - 8.50 = 0.50
    assert (charge.price, charge.margin) == (D("9"), D("0.5"))
    assert charge.rule_ids == ["unit_price@*/*/DT-Out[region=eu-west-1]"]


def test_a_quantity_rule_refuses_a_record_without_quantity() -> None:
    with pytest.raises(RatingError, match="r1: rule unit_price@\\*/\\*/\\* prices by quantity"):
        rate_usage(record(), pricing({"kind": "unit_price", "unit_price": "1"}))


def _rate_in_order(price: CustomerPricing, *records: UsageRecord) -> list[Decimal]:
    charges, _ = rate_all(list(records), price)
    return [c.price for c in charges]


GRADUATED = {
    "kind": "tiered",
    "mode": "graduated",
    "tiers": [
        {"up_to": "100", "unit_price": "0.10"},
        {"up_to": "500", "unit_price": "0.08"},
        {"unit_price": "0.05"},
    ],
}


def test_graduated_tiers_on_quantity_across_the_period() -> None:
    prices = _rate_in_order(
        pricing(GRADUATED),
        *(record(f"r{i}", pricing_quantity=D(q)) for i, q in enumerate(["60", "60", "400", "100"])),
    )
    assert prices == [
        D("6.00"),  # [0, 60): 60 x 0.10
        D("5.60"),  # [60, 120): 40 x 0.10 + 20 x 0.08 = 4.00 + 1.60
        D("31.40"),  # [120, 520): 380 x 0.08 + 20 x 0.05 = 30.40 + 1.00
        D("5.00"),  # [520, 620): 100 x 0.05
    ]
    # the whole period: 100 x 0.10 + 400 x 0.08 + 120 x 0.05 = 10 + 32 + 6 = 48
    assert sum(prices) == D("48")


def test_volume_tiers_reprice_the_period_when_it_crosses_a_tier() -> None:
    rule = {
        "kind": "tiered",
        "mode": "volume",
        "tiers": [{"up_to": "100", "unit_price": "1.00"}, {"unit_price": "0.80"}],
    }
    prices = _rate_in_order(
        pricing(rule), record("a", pricing_quantity=D("60")), record("b", pricing_quantity=D("60"))
    )
    # a: V(60) = 60 x 1.00 = 60; b: V(120) - V(60) = 120 x 0.80 - 60 = 96 - 60 = 36
    assert prices == [D("60"), D("36")]


def test_graduated_tiers_on_spend() -> None:
    rule = {
        "kind": "tiered",
        "mode": "graduated",
        "measure": "spend",
        "tiers": [{"up_to": "1000", "percent": "20"}, {"percent": "10"}],
    }
    prices = _rate_in_order(
        pricing(rule), record("a", billed_cost=D("600")), record("b", billed_cost=D("600"))
    )
    # a: 600 x 1.20 = 720; b: 400 x 1.20 + 200 x 1.10 = 480 + 220 = 700
    assert prices == [D("720"), D("700")]


def test_package_price_per_started_block_over_the_period() -> None:
    rule = {"kind": "package", "size": "10", "price": "1.50"}
    prices = _rate_in_order(
        pricing(rule),
        record("a", pricing_quantity=D("4")),
        record("b", pricing_quantity=D("4")),
        record("c", pricing_quantity=D("5")),
    )
    # a: 4 units start block 1 -> 1.50; b: 8 units, still block 1 -> 0; c: 13 units, block 2 -> 1.50
    assert prices == [D("1.50"), D("0"), D("1.50")]


def test_minimum_charge_per_period() -> None:
    rule = {"kind": "minimum", "amount": "50", "percent": "10"}
    prices = _rate_in_order(
        pricing(rule), *(record(r, billed_cost=D("20")) for r in ("a", "b", "c"))
    )
    # a: max(20 x 1.1, 50) = 50; b: max(44, 50) - 50 = 0; c: max(66, 50) - 50 = 16; total 66
    assert prices == [D("50"), D("0"), D("16")]


def test_tier_state_is_per_customer_period_and_rule() -> None:
    price = pricing(GRADUATED)
    september = record("a", pricing_quantity=D("100"))
    october = record(
        "b",
        pricing_quantity=D("100"),
        billing_period="2024-10",
        charge_period_start=datetime(2024, 10, 1, tzinfo=UTC),
    )
    charges, state = rate_all([september, october], price)
    # each period starts its own count: 100 x 0.10 twice
    assert [c.price for c in charges] == [D("10"), D("10")]
    assert sorted(state.heads) == [
        "acme|2024-09|pl|tiered@*/*/*",
        "acme|2024-10|pl|tiered@*/*/*",
    ]


def test_a_redelivered_record_keeps_its_place_in_the_tiers() -> None:
    price = pricing(GRADUATED)
    first, state = rate_all([record("a", pricing_quantity=D("150"))], price)
    # a: 100 x 0.10 + 50 x 0.08 = 14.00
    assert first[0].price == D("14")
    again = rate_usage(record("a", pricing_quantity=D("150")), price, state=state)
    assert again.charge.price == D("14")
    assert state.total("acme|2024-09|pl|tiered@*/*/*") == D("150")


def test_the_most_specific_matching_rule_wins() -> None:
    price = pricing(
        {"kind": "markup", "percent": "10"},
        {"kind": "markup", "percent": "8", "provider": "AWS"},
        {"kind": "markup", "percent": "5", "provider": "AWS", "service": "Amazon EC2"},
        {"kind": "markup", "percent": "2", "sku": "X"},
        {"kind": "markup", "percent": "1", "sku": "X", "region": "us-east-1"},
        {
            "kind": "markup",
            "percent": "4",
            "provider": "AWS",
            "service": "Amazon EC2",
            "usage_type": "*Spot*",
        },
    )
    cases = [
        (record(provider="Microsoft", service_name="VMs"), "10"),
        (record(service_name="Amazon S3"), "8"),
        (record(sku_id="Y"), "5"),
        (record(sku_id="X", region="eu-west-1"), "2"),
        (record(sku_id="X", region="us-east-1"), "1"),
        (record(sku_id="USE1-SpotUsage:m5.large"), "4"),  # a filter makes a rule more specific
    ]
    for rec, percent in cases:
        charge = rate_usage(rec.model_copy(update={"billed_cost": D("100")}), price).charge
        assert charge.price == D(100) + D(percent), rec


def test_a_record_matching_two_overlapping_usage_type_globs_is_refused_naming_both() -> None:
    price = pricing(
        {"kind": "markup", "percent": "3", "service": "Amazon EC2", "usage_type": "*Spot*"},
        {"kind": "markup", "percent": "4", "service": "Amazon EC2", "usage_type": "USE1-*"},
    )
    expected = (
        "record r1: rules markup@*/Amazon EC2/*[usage_type=*Spot*], "
        "markup@*/Amazon EC2/*[usage_type=USE1-*] tie (their usage-type globs overlap)"
    )
    with pytest.raises(RatingError, match=re.escape(expected)):
        rate_usage(record(sku_id="USE1-SpotUsage:m5.large"), price)
    # a record matching one glob only is rated by it: 100 x 1.04
    charge = rate_usage(record(sku_id="USE1-BoxUsage", billed_cost=D("100")), price).charge
    assert charge.price == D("104")


def test_no_matching_rule_charges_the_basis() -> None:
    charge = rate_usage(
        record(billed_cost=D("7")), pricing({"kind": "markup", "percent": "9", "provider": "GCP"})
    ).charge
    assert (charge.price, charge.rule_ids) == (D("7"), [])
    assert charge.rule == "at billed cost, no rule matches"


VERSIONED = PriceList.model_validate(
    {
        "id": "std",
        "versions": [
            {
                "version": 1,
                "effective_from": "2024-01-01",
                "effective_to": "2024-06-01",
                "rules": [{"kind": "markup", "percent": "10"}],
            },
            {
                "version": 2,
                "effective_from": "2024-09-15",
                "rules": [{"kind": "markup", "percent": "20"}],
            },
        ],
    }
)


@pytest.mark.parametrize(
    ("day", "version", "price"),
    [
        (datetime(2024, 3, 1, tzinfo=UTC), 1, "11"),  # 10 x 1.10
        (datetime(2024, 9, 14, 23, tzinfo=UTC), 1, None),  # v1 ended 2024-06-01: no version
        (datetime(2024, 9, 15, tzinfo=UTC), 2, "12"),  # v2 from its date: 10 x 1.20
    ],
)
def test_the_version_in_effect_on_the_charge_date_applies(
    day: datetime, version: int, price: str | None
) -> None:
    customer = CustomerPricing("acme", "USD", VERSIONED)
    rec = record(billed_cost=D("10"), charge_period_start=day)
    if price is None:
        with pytest.raises(RatingError, match="price list 'std' has no version in effect on"):
            rate_usage(rec, customer)
        return
    charge = rate_usage(rec, customer).charge
    assert (charge.price, charge.price_list_id, charge.price_list_version) == (
        D(price),
        "std",
        version,
    )


def test_a_record_before_the_first_version_is_refused() -> None:
    customer = CustomerPricing("acme", "USD", VERSIONED)
    with pytest.raises(RatingError, match="no version in effect on 2023-12-31"):
        rate_usage(record(charge_period_start=datetime(2023, 12, 31, tzinfo=UTC)), customer)


def test_an_empty_state_is_not_changed_by_rating() -> None:
    state = TierState()
    rate_usage(record(pricing_quantity=D("5")), pricing(GRADUATED), state=state)
    assert state == TierState()


def test_a_batch_memo_of_choices_plans_each_record_as_planning_it_alone() -> None:
    price = pricing(
        {"kind": "markup", "percent": "10"},
        {"kind": "markup", "percent": "5", "provider": "Microsoft"},
        {"kind": "markup", "percent": "2", "sku": "X", "region": "us-east-1"},
        {"kind": "markup", "percent": "3", "service": "Amazon EC2", "usage_type": "*Spot*"},
        {"kind": "markup", "percent": "4", "service": "Amazon EC2", "usage_type": "USE1-*"},
        {"kind": "discount", "percent": "1", "service": "Amazon S3"},
    )
    versioned = CustomerPricing("acme", "USD", VERSIONED)
    records = [
        (record("a"), price),
        (record("a2", provider="Microsoft", service_name="VMs"), price),
        (record("b", sku_id="X", region="us-east-1"), price),
        (record("c", sku_id="X", region="eu-west-1"), price),
        (record("d", service_name="Amazon S3"), price),
        (record("e", line_type=LineType.CREDIT, billed_cost=D("-1")), price),
        (record("f", sku_id="USE1-BoxUsage"), price),
        (record("g", charge_period_start=datetime(2024, 3, 1, tzinfo=UTC)), versioned),
        (record("h", charge_period_start=datetime(2024, 9, 20, tzinfo=UTC)), versioned),
    ]
    choices = Choices()
    for _ in range(2):  # the second round is answered from the memo
        for rec, customer in records:
            assert plan_usage(rec, customer, choices) == plan_usage(rec, customer), rec.record_id
    # a choice that fails is not kept: each record is refused with its own id
    for rid in ("t1", "t2"):
        with pytest.raises(RatingError, match=f"record {rid}: rules .* tie"):
            plan_usage(record(rid, sku_id="USE1-SpotUsage:m5.large"), price, choices)
    for rid in ("v1", "v2"):
        rec = record(rid, charge_period_start=datetime(2024, 7, 1, tzinfo=UTC))
        with pytest.raises(RatingError, match=f"record {rid}: price list 'std' has no version"):
            plan_usage(rec, versioned, choices)


@pytest.mark.parametrize(
    ("rule", "cumulative"),
    [
        ({"kind": "markup", "percent": "1"}, False),
        ({"kind": "discount", "percent": "1"}, False),
        ({"kind": "unit_delta", "delta": "0.01"}, False),
        ({"kind": "unit_price", "unit_price": "0.01"}, False),
        (GRADUATED, True),
        ({"kind": "package", "size": "10", "price": "1"}, True),
        ({"kind": "minimum", "amount": "10"}, True),
    ],
)
def test_the_rules_that_price_by_the_running_total_are_the_cumulative_kinds(
    rule: dict[str, Any], cumulative: bool
) -> None:
    [loaded] = pricing(rule).price_list.versions[0].rules
    for _ in range(2):  # the second answer comes from the per-class memo
        assert is_cumulative(loaded) is cumulative
    assert isinstance(loaded, TieredRule | PackageRule | MinimumRule) is cumulative
