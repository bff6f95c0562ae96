"""Rating and invoicing read "savings removed" off a charge with the same formula: rating to
know the saving a re-rating correction must carry, invoicing to show it (step 4). Checked on
every charge shape rating emits, and on the issue's example: a re-rated savings-plan line shows
40 removed, not 140."""

from __future__ import annotations

from decimal import Decimal

from rating_savings_example import covered, pricing

from billing_invoicing.adapters.invoice_repo import savings_removed
from billing_rating.adapters.memory import (
    InMemoryChargePublisher,
    InMemoryPricingCatalog,
    InMemoryRatedStore,
    InMemoryTierStore,
)
from billing_rating.domain.rerating import savings_of
from billing_rating.service.rate_batch import rate_batch
from billing_rating.service.rerate_period import rerate_period
from billing_schemas.events import RatedCharge


async def _charges_after_a_markup_change(before: bool, after: bool) -> list[RatedCharge]:
    """The covered line rated with savings removal ``before``, then re-rated with a higher
    markup and savings removal ``after``: its charge and the correction."""
    catalog = InMemoryPricingCatalog({"AWS:111": pricing("10", savings_removal=before)})
    kept = InMemoryRatedStore()
    first = await rate_batch([covered()], catalog, InMemoryTierStore(), kept)
    catalog.pricing["AWS:111"] = pricing("20", savings_removal=after)
    done = await rerate_period(
        "2024-09",
        customer_id=None,
        catalog=catalog,
        kept=kept,
        publisher=InMemoryChargePublisher(),
        correlation_id="r",
    )
    return [e.data for _, e in first.charges] + done.corrections


async def test_rating_and_invoicing_read_the_same_saving_off_every_charge() -> None:
    charges = await _charges_after_a_markup_change(True, True)
    charges += await _charges_after_a_markup_change(True, False)
    charges += await _charges_after_a_markup_change(False, True)
    assert len(charges) == 6
    assert [savings_of(c) for c in charges] == [40, 0, 40, -40, 0, 40]
    assert [savings_of(c) for c in charges] == [savings_removed(c) for c in charges]


async def test_a_re_rated_savings_plan_line_shows_its_saving_once() -> None:
    charges = await _charges_after_a_markup_change(True, True)
    # on demand 100, billed 60: 40 removed, however often the line is re-rated
    assert sum((savings_removed(c) for c in charges), Decimal(0)) == Decimal(40)
