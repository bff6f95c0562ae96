"""Properties of the engine, checked with hypothesis: tier splitting sums to the whole, rating
the same records twice equals rating them once, price >= cost under any markup, and currency
conversion round-trips within one minor unit."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing_catalog.pricing import FxRate, PackageRule, PriceList, Tier, TieredRule
from billing_rating.domain.fx import FxTable
from billing_rating.domain.rating import CustomerPricing, rate_all, rate_usage
from billing_rating.domain.tiers import (
    Claim,
    TierState,
    cumulative_price,
    price_of_claim,
    split_into_tiers,
)
from billing_schemas.events import ChargeCategory, LineType, UsageRecord
from billing_schemas.money import minor_units, round_to_minor

settings.register_profile("rating", max_examples=150, deadline=None)
settings.load_profile("rating")

quantities = st.decimals(min_value=0, max_value=10_000, places=6)
prices = st.decimals(min_value=0, max_value=100, places=6)
costs = st.decimals(min_value=0, max_value=100_000, places=11)


@st.composite
def tier_lists(draw: st.DrawFn) -> list[Tier]:
    bounds = sorted(
        draw(st.sets(st.decimals(min_value=1, max_value=5_000, places=2), min_size=0, max_size=4))
    )
    uppers: list[Decimal | None] = [*bounds, None]
    return [Tier(up_to=b, unit_price=draw(prices)) for b in uppers]


@st.composite
def cumulative_rules(draw: st.DrawFn) -> TieredRule | PackageRule:
    if draw(st.booleans()):
        size = draw(st.decimals(min_value=Decimal("0.5"), max_value=100, places=2))
        return PackageRule(size=size, price=draw(prices))
    return TieredRule(mode=draw(st.sampled_from(["graduated", "volume"])), tiers=draw(tier_lists()))


@given(tier_lists(), quantities, quantities)
def test_a_quantity_splits_into_tier_parts_that_add_up_to_it(
    tiers: list[Tier], start: Decimal, amount: Decimal
) -> None:
    parts = split_into_tiers(tiers, start, start + amount)
    assert sum(parts) == amount
    assert all(part >= 0 for part in parts)


@given(cumulative_rules(), st.lists(quantities, min_size=1, max_size=12))
def test_the_charges_of_a_split_period_add_up_to_pricing_its_total_at_once(
    rule: TieredRule | PackageRule, amounts: list[Decimal]
) -> None:
    state = TierState()
    total = Decimal(0)
    for n, amount in enumerate(amounts):
        claim = state.claim_for("k", f"r{n}", amount)
        state.apply(claim)
        total += price_of_claim(rule, claim)
    whole = sum(amounts, Decimal(0))
    assert total == cumulative_price(rule, whole, started=True)
    assert total == price_of_claim(rule, Claim("k", "all", 1, Decimal(0), whole))


def _record(n: int, quantity: Decimal, cost: Decimal, sku: str) -> UsageRecord:
    return UsageRecord(
        record_id=f"r{n}",
        provider="AWS",
        billing_account_id="999",
        sub_account_id="111",
        billing_period="2024-09",
        charge_period_start=datetime(2024, 9, 1 + n % 28, tzinfo=UTC),
        charge_period_end=datetime(2024, 9, 1 + n % 28, 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name="Amazon EC2",
        sku_id=sku,
        currency="USD",
        pricing_quantity=quantity,
        billed_cost=cost,
    )


MIXED = CustomerPricing(
    "acme",
    "USD",
    PriceList.model_validate(
        {
            "id": "mixed",
            "versions": [
                {
                    "version": 1,
                    "effective_from": "2024-01-01",
                    "currency": "USD",
                    "rules": [
                        {"kind": "markup", "percent": "7"},
                        {
                            "kind": "tiered",
                            "mode": "graduated",
                            "sku": "G",
                            "tiers": [
                                {"up_to": "100", "unit_price": "0.1"},
                                {"unit_price": "0.05"},
                            ],
                        },
                        {
                            "kind": "tiered",
                            "mode": "volume",
                            "measure": "spend",
                            "sku": "V",
                            "tiers": [{"up_to": "500", "percent": "10"}, {"percent": "5"}],
                        },
                        {"kind": "package", "size": "10", "price": "2", "sku": "P"},
                        {"kind": "minimum", "amount": "30", "sku": "M"},
                    ],
                }
            ],
        }
    ),
)

records = st.lists(
    st.tuples(quantities, costs, st.sampled_from(["G", "V", "P", "M", "other"])),
    min_size=1,
    max_size=15,
).map(lambda rows: [_record(n, q, c, sku) for n, (q, c, sku) in enumerate(rows)])


@given(records)
def test_rating_the_same_records_twice_equals_rating_them_once(batch: list[UsageRecord]) -> None:
    once, state = rate_all(batch, MIXED)
    twice, state_after = rate_all(batch, MIXED, state=state)
    assert twice == once
    assert state_after == state
    # and a redelivery inside one stream: every record appears twice, charged the same
    doubled, doubled_state = rate_all(batch + batch, MIXED)
    assert doubled == once + once
    assert doubled_state == state


@given(
    costs,
    st.decimals(min_value=0, max_value=1_000, places=4),
    st.sampled_from([None, "AWS", "Amazon EC2"]),
)
def test_price_is_at_least_cost_under_any_markup(
    cost: Decimal, percent: Decimal, scope: str | None
) -> None:
    rule: dict[str, Any] = {"kind": "markup", "percent": str(percent)}
    if scope == "AWS":
        rule["provider"] = scope
    elif scope:
        rule["service"] = scope
    price_list = PriceList.model_validate(
        {"id": "m", "versions": [{"version": 1, "effective_from": "2024-01-01", "rules": [rule]}]}
    )
    charge = rate_usage(
        _record(0, Decimal(1), cost, "x"), CustomerPricing("a", "USD", price_list)
    ).charge
    assert charge.price >= charge.cost
    assert charge.margin >= 0


CURRENCIES = ["USD", "EUR", "JPY", "BHD", "CHF", "GBP", "KWD", "CLP"]


@given(
    st.sampled_from(CURRENCIES),
    st.sampled_from(CURRENCIES),
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10_000), places=6),
    st.decimals(min_value=-1_000_000, max_value=1_000_000, places=11),
    st.booleans(),
)
def test_conversion_round_trips_within_one_minor_unit(
    base: str, quote: str, rate: Decimal, amount: Decimal, stored_inverse: bool
) -> None:
    assume(base != quote)
    day = date(2024, 9, 1)
    # the catalog may hold the pair either way round; the engine inverts when it must
    fx = (
        FxRate(base=quote, quote=base, as_of=day, rate=rate)
        if stored_inverse
        else FxRate(base=base, quote=quote, as_of=day, rate=rate)
    )
    table = FxTable([fx])
    there = table.quote(base, quote, day).convert(amount)
    back = table.quote(quote, base, day).convert(there)
    step = Decimal(1).scaleb(-minor_units(base))
    assert abs(back - amount) <= step
    assert abs(round_to_minor(back, base) - round_to_minor(amount, base)) <= step


def _reversal(record: UsageRecord) -> UsageRecord:
    assert record.pricing_quantity is not None
    return record.model_copy(
        update={
            "record_id": f"{record.record_id}~rev",
            "pricing_quantity": -record.pricing_quantity,
            "billed_cost": -record.billed_cost,
            "charge_class": "correction",
            "corrects_record_id": record.record_id,
        }
    )


@given(records, st.data())
def test_reversals_anywhere_leave_the_period_at_a_fresh_rating_of_what_remains(
    rows: list[UsageRecord], data: st.DataObject
) -> None:
    # some records are taken back, each by a reversal placed anywhere after it
    sequence = list(rows)
    taken = data.draw(st.sets(st.sampled_from(range(len(rows)))), label="reversed")
    for n in sorted(taken):
        after = sequence.index(rows[n]) + 1
        at = data.draw(st.integers(min_value=after, max_value=len(sequence)), label="at")
        sequence.insert(at, _reversal(rows[n]))
    charged, _ = rate_all(sequence, MIXED)
    remaining, _ = rate_all([r for n, r in enumerate(rows) if n not in taken], MIXED)
    assert sum(c.price for c in charged) == sum(c.price for c in remaining)
    by_id = {c.charge_id: c.price for c in charged}
    for n in taken:  # each reversal exactly minus its original
        assert by_id[f"r{n}~rev"] == -by_id[f"r{n}"]
    # a reversal stays a correction on its charge (the invoice prints it as one)
    kinds = {c.charge_id: c.charge_class for c in charged}
    assert all(kinds[f"r{n}~rev"] == "correction" for n in taken)
    assert all(kinds[f"r{n}"] is None for n in range(len(rows)))
