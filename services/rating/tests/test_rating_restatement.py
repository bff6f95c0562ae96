"""A restated bill takes lines back with reversals (``charge_class: correction``, negative
amounts, ``corrects_record_id``): each reversal is charged exactly minus what its original was
charged, takes the original's place in the running total back, and the period then adds up to
a fresh rating of the bill's latest version, for every period-cumulative rule kind. Over the
ports' in-memory fakes; the same flow on the real broker and database is in
``test_rating_restatement_flow.py``."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rating_restatement_example import (
    B2,
    RULES,
    VERSIONS,
    A,
    B,
    C,
    events,
    fresh_total,
    line,
    pricing,
    reversal,
)

from billing_rating.adapters.memory import (
    InMemoryChargePublisher,
    InMemoryPricingCatalog,
    InMemoryRatedStore,
    InMemoryTierStore,
)
from billing_rating.service.rate_batch import RatedBatch, rate_batch
from billing_rating.service.rerate_period import rerate_period
from billing_schemas.events import UsageRecord

D = Decimal


def prices(batch: RatedBatch) -> dict[str, Decimal]:
    return {event.data.charge_id: event.data.price for _, event in batch.charges}


@pytest.mark.parametrize("kind", sorted(RULES))
async def test_after_each_restatement_the_period_adds_up_to_a_fresh_rating_of_it(
    kind: str,
) -> None:
    customer = pricing(RULES[kind])
    catalog = InMemoryPricingCatalog({"AWS:111": customer})
    tiers, kept = InMemoryTierStore(), InMemoryRatedStore()
    charged: dict[str, Decimal] = {}
    previous: list[UsageRecord] = []
    for latest in VERSIONS:
        ids = {r.record_id for r in latest}
        added = [r for r in latest if r not in previous]
        taken_back = [reversal(r) for r in previous if r.record_id not in ids]
        # new lines first: the reversals then sit after them in the running total
        batch = await rate_batch(events(added + taken_back), catalog, tiers, kept)
        assert batch.failures == []
        got = prices(batch)
        for rev in taken_back:
            assert rev.corrects_record_id is not None
            assert got[rev.record_id] == -charged[rev.corrects_record_id]  # exactly minus
        charged |= got
        assert sum(charged.values(), D(0)) == fresh_total(latest, customer), (kind, latest)
        previous = latest


async def test_the_graduated_example_by_hand() -> None:
    catalog = InMemoryPricingCatalog({"AWS:111": pricing(RULES["graduated-quantity"])})
    tiers, kept = InMemoryTierStore(), InMemoryRatedStore()
    first = await rate_batch(events([A, B, C]), catalog, tiers, kept)
    # a [0, 80) at 0.10 = 8; b [80, 120): 20 x 0.10 + 20 x 0.05 = 3; c [120, 150) at 0.05 = 1.5
    assert prices(first) == {"a": D(8), "b": D(3), "c": D("1.5")}
    second = await rate_batch(events([B2, reversal(B), reversal(C)]), catalog, tiers, kept)
    # b2 [150, 180) at 0.05 = 1.5; b~rev -3 takes b's 40 back (180 -> 140): F(140) - F(180)
    # = 12 - 14 = -2, so the running total's re-pricing is -2 - (-3) = +1 (c's 30 units now
    # sit lower); c~rev -1.5 takes 30 back (140 -> 110): F(110) - F(140) = -1.5, nothing left
    assert prices(second) == {
        "b2": D("1.5"),
        "b~rev": D(-3),
        "b~rev:tiers": D(1),
        "c~rev": D("-1.5"),
    }
    # 8 + 3 + 1.5 + 1.5 - 3 + 1 - 1.5 = 10.5 = a fresh rating of [a, b2]: 8 + 2.5
    assert sum(prices(first).values()) + sum(prices(second).values()) == D("10.5")
    [(_, tiers_event)] = [(k, e) for k, e in second.charges if e.data.charge_id == "b~rev:tiers"]
    assert (tiers_event.data.cost, tiers_event.data.record_id) == (D(0), "b~rev")
    assert "re-priced after the reversal of b" in tiers_event.data.rule


async def test_a_redelivered_reversal_is_charged_the_same_and_moves_nothing() -> None:
    catalog = InMemoryPricingCatalog({"AWS:111": pricing(RULES["volume-quantity"])})
    tiers, kept = InMemoryTierStore(), InMemoryRatedStore()
    await rate_batch(events([A, B, C]), catalog, tiers, kept)
    once = await rate_batch(events([reversal(B)]), catalog, tiers, kept)
    again = await rate_batch(events([reversal(B)]), catalog, tiers, kept)
    assert prices(again) == prices(once)
    await rate_batch(events([B2]), catalog, tiers, kept)
    # what rating kept as charged (each charge id once, as invoicing stores them)
    total = sum(r.emitted.price for r in await kept.period("2024-09"))
    assert total == fresh_total([A, C, B2], pricing(RULES["volume-quantity"]))


async def test_a_reversal_of_a_record_never_charged_is_dead_lettered_with_the_reason() -> None:
    catalog = InMemoryPricingCatalog({"AWS:111": pricing(RULES["package"])})
    batch = await rate_batch(
        events([reversal(B)]), catalog, InMemoryTierStore(), InMemoryRatedStore()
    )
    assert batch.charges == []
    assert batch.failures == [
        (
            0,
            "record b~rev reverses record b, which rating has not charged to customer 'acme' "
            "in 2024-09 (dead-lettered or not rated yet): rate that record first, then replay "
            "this one",
        )
    ]


@pytest.mark.parametrize("kind", sorted(RULES))
async def test_a_provider_s_own_negative_usage_line_moves_the_running_total_back(
    kind: str,
) -> None:
    # Azure writes a reversal of its own as a usage line with negative quantity and cost (a
    # FOCUS ChargeClass Correction, no record named): it is rated, not dead-lettered
    customer = pricing(RULES[kind])
    credit = line("azure-credit", 20, "-25", "-15").model_copy(
        update={"charge_class": "correction"}
    )
    catalog = InMemoryPricingCatalog({"AWS:111": customer})
    batch = await rate_batch(
        events([A, B, credit]), catalog, InMemoryTierStore(), InMemoryRatedStore()
    )
    assert batch.failures == []
    assert sum(prices(batch).values()) == fresh_total([A, B, credit], customer)
    # and as a fresh rating puts it: F(net total), the net being 95 units or 75 of spend
    net = fresh_total([line("net", 2, "95", "75")], customer)
    assert sum(prices(batch).values()) == net


async def test_a_credit_larger_than_the_running_total_is_refused_with_the_reason() -> None:
    catalog = InMemoryPricingCatalog({"AWS:111": pricing(RULES["graduated-quantity"])})
    credit = line("too-much", 20, "-90", "-45")
    batch = await rate_batch(
        events([A, credit]), catalog, InMemoryTierStore(), InMemoryRatedStore()
    )
    assert [reason for _, reason in batch.failures] == [
        "record too-much: quantity -90 would take the period's running total of rule "
        "tiered@*/Amazon S3/* from 80 below zero (a reversal or credit before the usage it "
        "takes back)"
    ]


async def test_re_rating_after_a_restatement_corrects_to_a_fresh_rating_of_the_latest_version() -> (
    None
):
    customer = pricing(RULES["graduated-quantity"], markup="0")
    catalog = InMemoryPricingCatalog({"AWS:111": customer})
    tiers, kept = InMemoryTierStore(), InMemoryRatedStore()
    await rate_batch(events([A, B, C]), catalog, tiers, kept)
    await rate_batch(events([B2, reversal(B), reversal(C)]), catalog, tiers, kept)
    publisher = InMemoryChargePublisher()

    unchanged = await rerate_period(
        "2024-09",
        customer_id=None,
        catalog=catalog,
        kept=kept,
        publisher=publisher,
        correlation_id="r0",
    )
    assert (unchanged.corrections, unchanged.skipped) == ([], [])

    cheaper = {
        **RULES["graduated-quantity"],
        "tiers": [{"up_to": "100", "unit_price": "0.08"}, {"unit_price": "0.04"}],
    }
    catalog.pricing["AWS:111"] = pricing(cheaper)
    done = await rerate_period(
        "2024-09",
        customer_id=None,
        catalog=catalog,
        kept=kept,
        publisher=publisher,
        correlation_id="r1",
    )
    assert done.skipped == []
    charged = sum(r.emitted.price for r in await kept.period("2024-09"))
    # a fresh rating of [a, b2] at the new tiers: 80 x 0.08 + 20 x 0.08 + 10 x 0.04 = 8.4
    assert charged == fresh_total([A, B2], pricing(cheaper)) == D("8.4")
