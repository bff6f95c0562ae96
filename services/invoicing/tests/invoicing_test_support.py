"""Builders shared by invoicing's tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from billing_schemas.events import ChargeCategory, LineType, RatedCharge


def rated(
    charge_id: str,
    customer_id: str = "alpha",
    *,
    period: str = "2024-09",
    service: str = "Amazon EC2",
    price: str = "1.00",
    cost: str = "0.80",
) -> RatedCharge:
    """A rated usage charge in EUR."""
    return RatedCharge(
        charge_id=charge_id,
        record_id=charge_id,
        customer_id=customer_id,
        provider="AWS",
        sub_account_id="111",
        billing_period=period,
        charge_period_start=datetime(int(period[:4]), int(period[5:]), 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name=service,
        cost=Decimal(cost),
        cost_currency="EUR",
        price=Decimal(price),
        currency="EUR",
        margin=Decimal(price) - Decimal(cost),
        rule="markup (global)",
        price_list_id="p",
        price_list_version=1,
    )
