"""Period-cumulative pricing (tiers, packages, minimums) and its explicit state: pure, no I/O.

Rules whose price depends on what came before in the billing period are written as a function
``F`` of the period's running total ``x`` (of quantity, or of spend): the price of everything up
to ``x``. A record that moves the running total from ``start`` to ``end`` is charged
``F(end) - F(start)``. The charges of a period therefore add up to ``F(total)``, whatever the
order or grouping of its records:

* graduated tiers: each part of the total at the price of the tier it falls in;
* volume tiers: the whole total at the price of the tier the total falls in; the record that
  crosses into a cheaper tier carries the re-pricing of the earlier units (it may be negative);
* package: ``ceil(x / size)`` started blocks at ``price`` each;
* minimum: ``max(x x (1 + percent / 100), amount)``, charged from the first record of the period.

Tier bounds are inclusive: a tier ``up_to: 100`` holds the units (0, 100].

The running total is the state. It is an explicit input and output: a :class:`TierState` holds,
per state key (customer, period, price list, rule), the latest :class:`Claim`, and the claims of
the records already rated. A record rated again (redelivery) finds its claim and is charged the
same, without moving the total.

A reversal (a restated bill taking a line back) takes its original's claim back: it claims the
next place with the original's amount negated, ``[total, total - amount)``, and the record
count of the key goes down by one (a minimum is charged while the period has a record in its
scope). The running total is then what it would be had the original never been rated, so the
records after it are placed as in a fresh rating of what remains.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

from billing_catalog.pricing import (
    MinimumRule,
    PackageRule,
    Tier,
    TieredRule,
    TierMeasure,
    TierMode,
)

ZERO = Decimal(0)
HUNDRED = Decimal(100)

CumulativeRule = TieredRule | PackageRule | MinimumRule


@dataclass(frozen=True)
class Claim:
    """A record's place in a period's running total: ``[start, end)``, ``seq``-th of its key."""

    key: str
    record_id: str
    seq: int
    start: Decimal
    end: Decimal
    live: int | None = None
    """How many records the total holds after this claim, when reversals made that differ
    from ``seq`` (``None``: it is ``seq``)."""
    reverses: str | None = None
    """The record whose claim this one takes back, if it is a reversal's."""

    @property
    def records(self) -> int:
        """How many records the running total holds after this claim."""
        return self.seq if self.live is None else self.live

    @property
    def records_before(self) -> int:
        """How many records the running total held before this claim."""
        return self.records + 1 if self.reverses is not None else self.records - 1


@dataclass
class TierState:
    """Running totals per state key, and the claims already made by records."""

    heads: dict[str, Claim] = field(default_factory=dict)
    claims: dict[tuple[str, str], Claim] = field(default_factory=dict)

    @classmethod
    def of(cls, claims: Iterable[Claim]) -> TierState:
        """The state after the given claims."""
        state = cls()
        for claim in claims:
            state.apply(claim)
        return state

    def claim_for(
        self, key: str, record_id: str, amount: Decimal, *, reverses: str | None = None
    ) -> Claim:
        """The record's claim: the one it already has, or a new one at the end of the total
        (``reverses``: the record whose claim it takes back, ``amount`` then being minus that
        claim's amount)."""
        existing = self.claims.get((key, record_id))
        if existing is not None:
            return existing
        head = self.heads.get(key)
        start = ZERO if head is None else head.end
        seq = 1 if head is None else head.seq + 1
        before = 0 if head is None else head.records
        records = before - 1 if reverses is not None else before + 1
        live = None if records == seq else records
        return Claim(key, record_id, seq, start, start + amount, live, reverses)

    def apply(self, claim: Claim) -> None:
        """Record a claim (applying one twice changes nothing)."""
        self.claims[claim.key, claim.record_id] = claim
        head = self.heads.get(claim.key)
        if head is None or claim.seq > head.seq:
            self.heads[claim.key] = claim

    def total(self, key: str) -> Decimal:
        """The running total of a key."""
        head = self.heads.get(key)
        return ZERO if head is None else head.end


def measure_of(rule: CumulativeRule) -> TierMeasure:
    """What the rule's running total counts."""
    if isinstance(rule, TieredRule):
        return rule.measure
    return TierMeasure.QUANTITY if isinstance(rule, PackageRule) else TierMeasure.SPEND


def _rate(tier: Tier, measure: TierMeasure) -> Decimal:
    if measure is TierMeasure.QUANTITY:
        assert tier.unit_price is not None  # checked when the price list is loaded
        return tier.unit_price
    assert tier.percent is not None  # checked when the price list is loaded
    return (HUNDRED + tier.percent) / HUNDRED


def split_into_tiers(tiers: list[Tier], start: Decimal, end: Decimal) -> list[Decimal]:
    """How much of ``[start, end)`` falls into each tier (one entry per tier; they add up to
    ``end - start``)."""
    parts = []
    lower = ZERO
    for tier in tiers:
        upper = tier.up_to
        low = max(start, lower)
        high = end if upper is None else min(end, upper)
        parts.append(max(high - low, ZERO))
        if upper is not None:
            lower = upper
    return parts


def _tier_of(tiers: list[Tier], total: Decimal) -> Tier:
    for tier in tiers:
        if tier.up_to is None or total <= tier.up_to:
            return tier
    return tiers[-1]


def cumulative_price(rule: CumulativeRule, total: Decimal, *, started: bool) -> Decimal:
    """``F(total)``: the price of the period's first ``total`` units (or of that much spend);
    ``started``: whether the total holds a record (a minimum is charged from the first)."""
    if isinstance(rule, TieredRule):
        if rule.mode is TierMode.GRADUATED:
            parts = split_into_tiers(rule.tiers, ZERO, total)
            return sum(
                (p * _rate(t, rule.measure) for p, t in zip(parts, rule.tiers, strict=True)), ZERO
            )
        return total * _rate(_tier_of(rule.tiers, total), rule.measure)
    if isinstance(rule, PackageRule):
        blocks = (total / rule.size).to_integral_value(rounding=ROUND_CEILING)
        return blocks * rule.price
    if not started:
        return ZERO
    return max(total * (HUNDRED + rule.percent) / HUNDRED, rule.amount)


def price_of_claim(rule: CumulativeRule, claim: Claim) -> Decimal:
    """``F(end) - F(start)``: what the record owning the claim is charged (a reversal is
    charged its original's price instead, and this is what its running total moved by)."""
    before = cumulative_price(rule, claim.start, started=claim.records_before > 0)
    return cumulative_price(rule, claim.end, started=claim.records > 0) - before
