"""Use case: rate a batch of recorded usage."""

from __future__ import annotations

from dataclasses import dataclass, field

from billing_rating.adapters.catalog import PricingCatalog
from billing_rating.domain.rating import RatingError, rate_usage
from billing_schemas.catalog import account_key
from billing_schemas.events import ChargeRated, UsageRecorded

SOURCE = "billing-rating"


@dataclass
class RatedBatch:
    """The charges to publish, keyed by customer, and the inputs that could not be rated."""

    charges: list[tuple[str, ChargeRated]] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)  # (index in batch, reason)


async def rate_batch(events: list[UsageRecorded], catalog: PricingCatalog) -> RatedBatch:
    """Rate every event; the charge id (and event id) is the usage record id, so rating the
    same record twice yields the same charge, which invoicing stores once."""
    keys = {account_key(e.data.provider, e.data.sub_account_id) for e in events}
    pricing = await catalog.pricing_for(keys)
    result = RatedBatch()
    for index, event in enumerate(events):
        record = event.data
        key = account_key(record.provider, record.sub_account_id)
        owner = pricing.get(key)
        if owner is None:
            result.failures.append(
                (index, f"no customer owns account {key!r}: add it to the catalog, then replay")
            )
            continue
        try:
            charge = rate_usage(record, owner).charge
        except RatingError as exc:
            result.failures.append((index, str(exc)))
            continue
        result.charges.append(
            (
                charge.customer_id,
                ChargeRated.create(
                    charge,
                    source=SOURCE,
                    correlation_id=event.correlation_id,
                    event_id=f"charge-rated:{charge.charge_id}",
                ),
            )
        )
    return result
