"""Usage events from upstream systems -> normalized usage records (pure)."""

from __future__ import annotations

import hashlib

from billing_schemas.events import ChargeCategory, LineType, UsageRecord, UsageSubmitted


def submitted_record_id(event: UsageSubmitted) -> str:
    """An upstream event is identified by its source and id (CloudEvents' rule)."""
    return hashlib.sha256(f"{event.source}\x1f{event.id}".encode()).hexdigest()[:32]


def submitted_to_record(event: UsageSubmitted) -> UsageRecord:
    """Normalize an upstream usage event; its cost is the billed cost, on demand."""
    data = event.data
    start = data.charge_period_start
    return UsageRecord(
        record_id=submitted_record_id(event),
        provider=data.provider,
        billing_account_id=data.billing_account_id or data.sub_account_id,
        sub_account_id=data.sub_account_id,
        billing_period=f"{start.year:04d}-{start.month:02d}",
        charge_period_start=start,
        charge_period_end=data.charge_period_end,
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
