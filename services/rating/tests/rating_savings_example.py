"""The savings-plan line shared by the savings tests (rating's re-rating, and the contract
with invoicing's formula in ``tests/``): usage covered by the payer's savings plan, on demand
100, billed 60, so 40 is the saving removal keeps."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from billing_catalog.pricing import PriceList, Rebilling
from billing_rating.domain.rating import CustomerPricing
from billing_schemas.events import ChargeCategory, LineType, UsageRecord, UsageRecorded

D = Decimal


def covered(currency: str = "USD") -> UsageRecorded:
    """Usage covered by the payer's savings plan: on demand 100, billed 60 (saving 40)."""
    record = UsageRecord(
        record_id="sp-covered",
        provider="AWS",
        billing_account_id="999",
        sub_account_id="111",
        billing_period="2024-09",
        charge_period_start=datetime(2024, 9, 3, tzinfo=UTC),
        charge_period_end=datetime(2024, 9, 3, 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.COMMITMENT_COVERED,
        service_name="Amazon EC2",
        currency=currency,
        commitment_id="sp-1",
        commitment_owner="payer",
        on_demand_cost=D(100),
        billed_cost=D(60),
    )
    return UsageRecorded.create(record, source="t", correlation_id="c")


def pricing(markup: str, **policy: object) -> CustomerPricing:
    price_list = PriceList.model_validate({"id": "pl", "version": 1, "markup_percent": markup})
    return CustomerPricing("acme", "USD", price_list, Rebilling.model_validate(policy))
