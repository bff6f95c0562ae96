"""Price lists as the catalog loads them: ties refused at load time, versions ordered and
immutable once effective, the legacy one-line form, references from customers and accounts."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from rating_rerating_example import usage

from billing_catalog.models import Catalog
from billing_catalog.pricing import (
    ALWAYS,
    MarkupRule,
    PriceList,
    immutable_version_changes,
)
from billing_rating.domain.rating import CustomerPricing, RatingError, rate_usage


def price_list(*versions: dict[str, Any]) -> PriceList:
    return PriceList.model_validate({"id": "pl", "versions": list(versions)})


def version(n: int, start: str, *rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"version": n, "effective_from": start, "rules": list(rules), **extra}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"provider": "AWS"}, {"provider": "AWS"}),
        ({}, {}),
        # same level, one filter each, a record can have both region and usage type
        (
            {"service": "Amazon EC2", "region": "us-east-1"},
            {"service": "Amazon EC2", "usage_type": "*Spot*"},
        ),
        ({"sku": "X", "provider": "AWS"}, {"sku": "X", "service": "Amazon EC2"}),
    ],
)
def test_two_rules_that_can_match_one_record_at_the_same_specificity_are_refused(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError, match=r"version 1: rules 1 \(.*\) and 2 \(.*\) tie"):
        price_list(
            version(
                1,
                "2024-01-01",
                {"kind": "markup", "percent": "1", **first},
                {"kind": "discount", "percent": "1", **second},
            )
        )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"provider": "AWS"}, {"provider": "GCP"}),  # disjoint
        ({"provider": "AWS", "region": "a"}, {"provider": "AWS", "region": "b"}),  # disjoint
        ({"provider": "AWS"}, {"provider": "AWS", "region": "a"}),  # the filter is more specific
        ({"service": "S"}, {"sku": "X"}),  # different levels
    ],
)
def test_rules_that_never_tie_load(first: dict[str, Any], second: dict[str, Any]) -> None:
    loaded = price_list(
        version(
            1,
            "2024-01-01",
            {"kind": "markup", "percent": "1", **first},
            {"kind": "discount", "percent": "1", **second},
        )
    )
    assert len(loaded.versions[0].rules) == 2


def test_rules_with_amounts_need_the_version_currency() -> None:
    with pytest.raises(ValidationError, match="rule 1 \\(unit_price\\) has amounts"):
        price_list(version(1, "2024-01-01", {"kind": "unit_price", "unit_price": "1"}))


@pytest.mark.parametrize(
    ("tiers", "error"),
    [
        ([{"up_to": "10", "unit_price": "1"}], "the last tier must have no up_to"),
        (
            [{"up_to": "10", "unit_price": "1"}, {"up_to": "5", "unit_price": "1"}, {}],
            "increasing up_to",
        ),
        ([{"percent": "5"}], "tier 1: quantity tiers take a unit_price"),
    ],
)
def test_malformed_tiers_are_refused(tiers: list[dict[str, Any]], error: str) -> None:
    rule = {"kind": "tiered", "mode": "graduated", "tiers": tiers}
    with pytest.raises(ValidationError, match=re.escape(error)):
        price_list(version(1, "2024-01-01", rule, currency="USD"))


def test_versions_must_increase_in_number_and_date() -> None:
    with pytest.raises(ValidationError, match="version 2 must come after version 1"):
        price_list(version(1, "2024-05-01"), version(2, "2024-04-01"))


def test_the_legacy_one_line_form_is_one_global_markup_since_always() -> None:
    legacy = PriceList.model_validate({"id": "std", "version": 3, "markup_percent": "12.5"})
    [only] = legacy.versions
    assert (only.version, only.effective_from, only.effective_to) == (3, ALWAYS, None)
    [rule] = only.rules
    assert isinstance(rule, MarkupRule)
    assert rule.percent == 12.5
    assert rule.level == 0


STORED = price_list(
    version(1, "2024-01-01", {"kind": "markup", "percent": "10"}),
    version(2, "2024-12-01", {"kind": "markup", "percent": "12"}),
)


def test_an_effective_version_cannot_be_changed_or_removed() -> None:
    edited = price_list(
        version(1, "2024-01-01", {"kind": "markup", "percent": "11"}),
        version(2, "2024-12-01", {"kind": "markup", "percent": "12"}),
    )
    assert immutable_version_changes(STORED, edited, date(2024, 9, 1)) == [
        "price list 'pl' version 1 is effective since 2024-01-01 and cannot be changed: "
        "add a new version instead"
    ]
    dropped = price_list(version(2, "2024-12-01", {"kind": "markup", "percent": "12"}))
    assert immutable_version_changes(STORED, dropped, date(2024, 9, 1)) == [
        "price list 'pl' version 1 is effective since 2024-01-01 and cannot be removed"
    ]


def test_a_future_version_may_change_and_a_new_version_may_be_added() -> None:
    changed = price_list(
        version(1, "2024-01-01", {"kind": "markup", "percent": "10"}),
        version(2, "2024-11-01", {"kind": "markup", "percent": "15"}),
        version(3, "2025-01-01", {"kind": "markup", "percent": "9"}),
    )
    assert immutable_version_changes(STORED, changed, date(2024, 9, 1)) == []
    # once 2024-12-01 has passed, version 2 is frozen too
    assert len(immutable_version_changes(STORED, changed, date(2024, 12, 1))) == 1


def _catalog(customer_price_list: Any, **account: Any) -> dict[str, Any]:
    return {
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
                "id": "eur-list",
                "versions": [
                    {
                        "version": 1,
                        "effective_from": "2024-01-01",
                        "currency": "EUR",
                        "rules": [{"kind": "unit_price", "unit_price": "1"}],
                    }
                ],
            }
        ],
        "customers": [
            {
                "id": "c",
                "name": "C",
                "address": {"lines": ["x"], "country": "DE"},
                "currency": "USD",
                "invoicing_entity": "e",
                "price_list": customer_price_list,
                "accounts": [{"provider": "AWS", "account_id": "1", **account}],
            }
        ],
    }


def test_a_customer_must_name_a_price_list_of_the_catalog() -> None:
    with pytest.raises(ValidationError, match="customer 'c': price_list 'nope' is not defined"):
        Catalog.model_validate(_catalog("nope"))
    with pytest.raises(
        ValidationError, match="account 'AWS:1': price_list 'gone' is not defined in price_lists"
    ):
        Catalog.model_validate(_catalog({"id": "inline"}, price_list="gone"))


def test_a_price_list_with_amounts_in_another_currency_is_refused() -> None:
    with pytest.raises(
        ValidationError,
        match="price list 'eur-list' version 1 has amounts in EUR but the customer is invoiced "
        "in USD",
    ):
        Catalog.model_validate(_catalog("eur-list"))


USD_THEN_EUR = {
    "id": "eur-list",
    "versions": [
        {
            "version": 1,
            "effective_from": "2024-01-01",
            "currency": "USD",
            "rules": [{"kind": "unit_price", "unit_price": "1"}],
        },
        {
            "version": 2,
            "effective_from": "2024-09-01",
            "currency": "EUR",
            "rules": [{"kind": "unit_price", "unit_price": "2"}],
        },
    ],
}


def test_every_version_s_currency_is_checked_when_the_catalog_is_loaded() -> None:
    catalog = _catalog("eur-list")
    catalog["price_lists"] = [USD_THEN_EUR]
    with pytest.raises(
        ValidationError,
        match="price list 'eur-list' version 2 has amounts in EUR but the customer is invoiced "
        "in USD",
    ):
        Catalog.model_validate(catalog)


def test_a_version_in_another_currency_is_refused_when_rating() -> None:
    # a price list that reached the database without the catalog's check (stored before it)
    pricing = CustomerPricing("c", "USD", PriceList.model_validate(USD_THEN_EUR))
    august = usage("r-aug", 20, "3", "1", "Amazon EC2")
    august = august.model_copy(update={"charge_period_start": datetime(2024, 8, 20, tzinfo=UTC)})
    assert rate_usage(august, pricing).charge.price == Decimal(3)  # version 1, in USD
    with pytest.raises(
        RatingError,
        match="record r-sep: price list 'eur-list' version 2 has amounts in EUR but customer "
        "'c' is invoiced in USD",
    ):
        rate_usage(usage("r-sep", 20, "3", "1", "Amazon EC2"), pricing)
