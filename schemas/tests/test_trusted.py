"""Values derived once: models built without validation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from billing_schemas.events import ChargeCategory, ChargeRated, LineType, RatedCharge
from billing_schemas.trusted import trusted

CHARGE: dict[str, Any] = {
    "charge_id": "r-1",
    "record_id": "r-1",
    "customer_id": "acme",
    "provider": "AWS",
    "sub_account_id": "111",
    "billing_period": "2024-09",
    "charge_period_start": datetime(2024, 9, 2, tzinfo=UTC),
    "charge_category": ChargeCategory.USAGE,
    "line_type": LineType.ON_DEMAND,
    "service_name": "Amazon EC2",
    "region": "eu-west-1",
    "cost": Decimal("0.0912"),
    "cost_currency": "USD",
    "price": Decimal("0.1026000"),
    "currency": "USD",
    "margin": Decimal("0.0114000"),
    "rule": "markup 12.5% on billed cost (global)",
    "price_list_id": "standard",
    "price_list_version": 1,
}


def test_a_trusted_model_is_the_model_construct_one() -> None:
    charge = trusted(RatedCharge, **CHARGE)
    reference = RatedCharge.model_construct(**CHARGE)
    assert charge == reference
    assert charge.model_dump_json() == reference.model_dump_json()
    assert charge.model_fields_set == reference.model_fields_set
    assert charge.rule_ids == []
    assert charge.rule_ids is not trusted(RatedCharge, **CHARGE).rule_ids
    assert RatedCharge.model_validate_json(charge.model_dump_json()) == charge
    envelope: dict[str, Any] = {
        "event_id": "charge-rated:r-1",
        "occurred_at": datetime(2024, 10, 1, tzinfo=UTC),
        "source": "billing-rating",
        "correlation_id": "bill-1",
        "data": charge,
    }
    event = trusted(ChargeRated, **envelope)
    assert event.model_dump_json() == ChargeRated.model_construct(**envelope).model_dump_json()
    copy = charge.model_copy(update={"price": Decimal(1)})
    assert (copy.price, charge.price) == (Decimal(1), Decimal("0.1026000"))


def test_a_trusted_model_needs_every_required_field() -> None:
    with pytest.raises(TypeError, match="customer_id is required"):
        trusted(RatedCharge, **{k: v for k, v in CHARGE.items() if k != "customer_id"})


def test_a_name_that_is_no_field_is_left_out() -> None:
    charge = trusted(RatedCharge, **CHARGE, not_a_field="x")
    assert charge == RatedCharge.model_construct(**CHARGE)
    assert charge.model_fields_set == set(CHARGE)
    assert "not_a_field" not in charge.model_dump()
