"""Usage events from upstream systems -> normalized usage records (pure)."""

from __future__ import annotations

import hashlib
from datetime import UTC

from billing_schemas.events import ChargeCategory, LineType, UsageRecord, UsageSubmitted


def submitted_record_id(event: UsageSubmitted) -> str:
    """An upstream event is identified by its source and id (CloudEvents' rule)."""
    return hashlib.sha256(f"{event.source}\x1f{event.id}".encode()).hexdigest()[:32]


def submitted_to_record(event: UsageSubmitted) -> UsageRecord:
    """Normalize an upstream usage event; its cost is the billed cost, on demand.

    Times are converted to UTC, as bill files' are: the billing period, and through it the
    price-list version and the FX rate rating picks, follow the UTC time, so
    ``2024-09-30T22:00-05:00`` is usage of October (UTC 2024-10-01T03:00).
    """
    data = event.data
    start = data.charge_period_start.astimezone(UTC)
    return UsageRecord(
        record_id=submitted_record_id(event),
        provider=data.provider,
        billing_account_id=data.billing_account_id or data.sub_account_id,
        sub_account_id=data.sub_account_id,
        billing_period=f"{start.year:04d}-{start.month:02d}",
        charge_period_start=start,
        charge_period_end=data.charge_period_end.astimezone(UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name=data.service_name,
        sku_id=data.sku_id,
        description=data.description,
        region=data.region,
        resource_id=data.resource_id,
        pricing_quantity=data.quantity,
        pricing_unit=data.unit,
        consumed_quantity=data.quantity,
        consumed_unit=data.unit,
        currency=data.currency,
        billed_cost=data.cost,
        effective_cost=data.cost,
        tags=data.tags,
    )
