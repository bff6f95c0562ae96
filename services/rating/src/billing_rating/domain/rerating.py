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

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from billing_schemas.events import RatedCharge


def corrections(emitted: Iterable[RatedCharge], fresh: Iterable[RatedCharge]) -> list[RatedCharge]:
    """The correction charges that bring ``emitted`` to ``fresh``, in ``fresh`` order."""
    current: dict[str, Decimal] = defaultdict(Decimal)
    count: dict[str, int] = defaultdict(int)
    for charge in emitted:
        current[charge.record_id] += charge.price
        count[charge.record_id] += 1
    out = []
    for charge in fresh:
        delta = charge.price - current[charge.record_id]
        if delta == 0:
            continue
        n = count[charge.record_id]
        out.append(
            charge.model_copy(
                update={
                    "charge_id": f"{charge.record_id}:rerated:{n}",
                    "cost": Decimal(0),
                    "price": delta,
                    "margin": delta,
                    "rule": f"re-rated: {charge.rule}",
                }
            )
        )
    return out
