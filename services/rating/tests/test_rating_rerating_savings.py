"""Re-rating corrections carry the change of the savings removed, not the record's whole
saving again: invoicing shows ``(basis_amount - cost) x fx_rate`` of each commitment-covered
charge rated on its on-demand cost (``savings_of``, the same formula), so the period's savings
after a re-rating are a fresh rating's. Hand-computed."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from rating_savings_example import covered, pricing

from billing_catalog.pricing import FxRate
from billing_rating.adapters.memory import (
    InMemoryChargePublisher,
    InMemoryPricingCatalog,
    InMemoryRatedStore,
    InMemoryTierStore,
)
from billing_rating.domain.rerating import savings_of
from billing_rating.service.rate_batch import rate_batch
from billing_rating.service.rerate_period import rerate_period

D = Decimal


async def _rerate(catalog: InMemoryPricingCatalog, kept: InMemoryRatedStore) -> list[Decimal]:
    done = await rerate_period(
        "2024-09",
        customer_id=None,
        catalog=catalog,
        kept=kept,
        publisher=InMemoryChargePublisher(),
        correlation_id="r",
    )
    return [savings_of(c) for c in done.corrections]


async def test_a_markup_change_corrects_the_price_and_leaves_the_savings_alone() -> None:
    catalog = InMemoryPricingCatalog({"AWS:111": pricing("10")})
    kept = InMemoryRatedStore()
    first = await rate_batch([covered()], catalog, InMemoryTierStore(), kept)
    [(_, charge)] = first.charges
    assert (charge.data.price, savings_of(charge.data)) == (D(110), D(40))

    catalog.pricing["AWS:111"] = pricing("20")
    done = await rerate_period(
        "2024-09",
        customer_id=None,
        catalog=catalog,
        kept=kept,
        publisher=InMemoryChargePublisher(),
        correlation_id="r",
    )
    [correction] = done.corrections
    # +10 (120 - 110), and no saving: the old code kept basis_amount 100 with cost 0, so the
    # invoice showed 40 + 100 = 140 removed instead of 40
    assert (correction.price, correction.cost, correction.basis_amount) == (D(10), D(0), D(0))
    assert savings_of(charge.data) + savings_of(correction) == D(40)


async def test_turning_savings_removal_off_takes_the_saving_back() -> None:
    catalog = InMemoryPricingCatalog({"AWS:111": pricing("10")})
    kept = InMemoryRatedStore()
    await rate_batch([covered()], catalog, InMemoryTierStore(), kept)
    catalog.pricing["AWS:111"] = pricing("10", savings_removal=False)
    # now billed cost 60 x 1.10 = 66: -44, and the saving of 40 is no longer kept
    assert await _rerate(catalog, kept) == [D(-40)]
    assert await _rerate(catalog, kept) == []  # converged


async def test_a_new_fx_rate_corrects_the_saving_by_its_difference_only() -> None:
    rates = [FxRate(base="EUR", quote="USD", as_of=date(2024, 9, 1), rate=D("1.10"))]
    catalog = InMemoryPricingCatalog({"AWS:111": pricing("10")}, rates)
    kept = InMemoryRatedStore()
    [(_, charge)] = (await rate_batch([covered("EUR")], catalog, InMemoryTierStore(), kept)).charges
    assert savings_of(charge.data) == D("44.00")  # 40 EUR at 1.10
    catalog.rates.append(FxRate(base="EUR", quote="USD", as_of=date(2024, 9, 2), rate=D("1.25")))
    # 40 EUR at 1.25 = 50: the correction adds 6, not 50 again
    assert await _rerate(catalog, kept) == [D(6)]
