"""Use case: keep the last ``billing reconcile`` verdict of each period, for the bill report."""

from __future__ import annotations

from collections.abc import Iterable

from billing_notify.domain.bill_report import newest_per_period, verdict_of
from billing_notify.ports import Reconciliations
from billing_schemas.events import PeriodReconciled


async def keep_verdicts(events: Iterable[PeriodReconciled], verdicts: Reconciliations) -> int:
    """Keep the newest verdict of each period the events carry, unless a verdict checked at
    the same time or later is kept already; how many periods got a newer verdict.

    One write per period, in turn: a period's verdicts share a partition (its key), so no two
    writes of one period's document ever race.
    """
    kept = 0
    for verdict in newest_per_period(verdict_of(event.data) for event in events):
        kept += await verdicts.keep(verdict)
    return kept
