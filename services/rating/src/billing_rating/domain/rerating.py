"""Re-rating a period after a price-list change: only the differences, as corrections (pure).

Rule: a record's current price is the sum of every charge already emitted for it (its charge
and any earlier corrections). Re-rating the period from scratch gives each record a fresh price;
where it differs, one correction charge carries ``fresh - current``, with no cost (the cost was
counted by the original charge), so the period's charges then add up to a fresh rating. Its id
is ``<record id>:rerated:<n>``, n being how many charges the record had: running the same
re-rating twice emits nothing the second time, and invoicing stores each id once. Corrections
go to the customer's open invoice like any charge; a finalized invoice is never touched.

A correction carries the change of the *savings removed* too, not the record's whole saving
again: invoicing shows ``(basis_amount - cost) x fx_rate`` of a commitment-covered line rated on
its on-demand cost as the saving kept (:func:`savings_of`); a correction's cost is 0, so its
``basis_amount`` is the savings delta in the cost currency (0 when the saving did not change).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import NamedTuple

from billing_schemas.events import LineType, RatedCharge

ZERO = Decimal(0)
ON_DEMAND_BASIS = "on-demand cost"
"""The ``basis`` of a charge rated on the on-demand price (savings removal)."""


def savings_of(charge: RatedCharge) -> Decimal:
    """The saving a charge keeps for the reseller, as invoicing shows it (step 4): on a
    commitment-covered line rated on its on-demand cost, ``(basis_amount - cost) x fx_rate``;
    otherwise 0. Invoicing's ``savings_removed`` is the same formula (a contract test in
    ``tests/`` holds the two equal)."""
    if (
        charge.line_type is not LineType.COMMITMENT_COVERED
        or charge.basis != ON_DEMAND_BASIS
        or charge.basis_amount is None
    ):
        return ZERO
    return (charge.basis_amount - charge.cost) * (charge.fx_rate or Decimal(1))


def corrections(emitted: Iterable[RatedCharge], fresh: Iterable[RatedCharge]) -> list[RatedCharge]:
    """The correction charges that bring ``emitted`` to ``fresh``, in ``fresh`` order."""
    current: dict[str, Emitted] = {}
    for charge in emitted:
        before = current.get(charge.record_id, NOTHING_EMITTED)
        current[charge.record_id] = before.plus(charge.price, savings_of(charge))
    return corrections_to(current, fresh)


class Emitted(NamedTuple):
    """What was charged for a record so far: the sum of its charges' prices, how many charges,
    and the sum of their savings removed (``None``: not known, kept before savings were)."""

    price: Decimal
    charges: int
    savings: Decimal | None = ZERO

    def plus(self, price: Decimal, savings: Decimal | None) -> Emitted:
        """This and one more charge."""
        total = None if self.savings is None or savings is None else self.savings + savings
        return Emitted(self.price + price, self.charges + 1, total)


NOTHING_EMITTED = Emitted(ZERO, 0)


def corrections_to(
    current: Mapping[str, Emitted], fresh: Iterable[RatedCharge]
) -> list[RatedCharge]:
    """The same rule as :func:`corrections`, from each record's :class:`Emitted` summary (what
    a store keeps, rather than every charge). A saving not known (``None``) is taken as
    unchanged."""
    out = []
    for charge in fresh:
        price, count, savings = current.get(charge.record_id, NOTHING_EMITTED)
        delta = charge.price - price
        saving = savings_of(charge)
        savings_delta = ZERO if savings is None else saving - savings
        if delta == 0 and savings_delta == 0:
            continue
        update: dict[str, object] = {
            "charge_id": f"{charge.record_id}:rerated:{count}",
            "cost": ZERO,
            "price": delta,
            "margin": delta,
            "rule": f"re-rated: {charge.rule}",
            "basis_amount": ZERO,
            "list_cost": ZERO,
            "charge_class": "correction",
        }
        if savings_delta != 0:
            # cost is 0, so basis_amount x fx_rate is what the correction adds to the savings
            rate = charge.fx_rate
            update["basis"] = ON_DEMAND_BASIS
            update["basis_amount"] = savings_delta if rate in (None, 1) else savings_delta / rate
        out.append(charge.model_copy(update=update))
    return out
