"""Re-rating a period after a price-list change: only the differences, as corrections (pure).

Rule: a record's current price is the sum of every charge already emitted for it (its charge
and any earlier corrections). Re-rating the period from scratch gives each record a fresh price;
where it differs, one correction charge carries ``fresh - current``, with no cost (the cost was
counted by the original charge), so the period's charges then add up to a fresh rating. Its id
is ``<record id>:rerated:<n>``, n being how many charges the record had: running the same
re-rating twice emits nothing the second time, and invoicing stores each id once. Corrections
go to the customer's open invoice like any charge; a finalized invoice is never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import NamedTuple

from billing_schemas.events import RatedCharge


def corrections(emitted: Iterable[RatedCharge], fresh: Iterable[RatedCharge]) -> list[RatedCharge]:
    """The correction charges that bring ``emitted`` to ``fresh``, in ``fresh`` order."""
    current: dict[str, Emitted] = {}
    for charge in emitted:
        price, count = current.get(charge.record_id, NOTHING_EMITTED)
        current[charge.record_id] = Emitted(price + charge.price, count + 1)
    return corrections_to(current, fresh)


class Emitted(NamedTuple):
    """What was charged for a record so far: the sum of its charges' prices, and how many."""

    price: Decimal
    charges: int


NOTHING_EMITTED = Emitted(Decimal(0), 0)


def corrections_to(
    current: Mapping[str, Emitted], fresh: Iterable[RatedCharge]
) -> list[RatedCharge]:
    """The same rule as :func:`corrections`, from each record's :class:`Emitted` summary (what
    a store keeps, rather than every charge)."""
    out = []
    for charge in fresh:
        price, count = current.get(charge.record_id, NOTHING_EMITTED)
        delta = charge.price - price
        if delta == 0:
            continue
        out.append(
            charge.model_copy(
                update={
                    "charge_id": f"{charge.record_id}:rerated:{count}",
                    "cost": Decimal(0),
                    "price": delta,
                    "margin": delta,
                    "rule": f"re-rated: {charge.rule}",
                }
            )
        )
    return out
