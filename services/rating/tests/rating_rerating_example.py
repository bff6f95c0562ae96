"""The worked example of a mid-period price change, shared by the re-rating tests (domain,
use case, and the e2e test on the running services).

One AWS account (payer 999, account 111) billed in USD; price list version 1 from 2024-01-01:
markup 10 % and graduated S3 tiers (0.10 a unit up to 100, then 0.05); version 2 from
2024-09-15: markup 20 %, the same S3 tiers (same rule id, so their running total goes on).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from billing_schemas.events import ChargeCategory, LineType, UsageRecord

S3_TIERS = {
    "id": "s3-tiers",
    "kind": "tiered",
    "mode": "graduated",
    "service": "Amazon S3",
    "tiers": [{"up_to": "100", "unit_price": "0.10"}, {"unit_price": "0.05"}],
}
V1 = {
    "version": 1,
    "effective_from": "2024-01-01",
    "currency": "USD",
    "rules": [{"kind": "markup", "percent": "10"}, S3_TIERS],
}
V2 = {
    **V1,
    "version": 2,
    "effective_from": "2024-09-15",
    "rules": [{"kind": "markup", "percent": "20"}, S3_TIERS],
}


def usage(rid: str, day: int, quantity: str, cost: str, service: str) -> UsageRecord:
    """A usage line of account 111 on 2024-09-<day>."""
    return UsageRecord(
        record_id=rid,
        provider="AWS",
        billing_account_id="999",
        sub_account_id="111",
        billing_period="2024-09",
        charge_period_start=datetime(2024, 9, day, tzinfo=UTC),
        charge_period_end=datetime(2024, 9, day, 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name=service,
        currency="USD",
        pricing_quantity=Decimal(quantity),
        billed_cost=Decimal(cost),
    )
