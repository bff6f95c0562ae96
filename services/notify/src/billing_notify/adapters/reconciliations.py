"""The last ``billing reconcile`` verdict of each period, kept by notify for the operators' bill
report.

Notify's own collection ``notify_reconcile_verdicts``: one document per period (``_id`` the
period, with ``reconciles``, ``unexplained`` and ``checked_at``), written from the verdicts
``billing reconcile`` publishes on ``billing.period.reconciled.v1``. A verdict replaces the kept
one only if it was checked later, in one conditional write: a redelivered or late verdict
changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from billing_notify.domain.bill_report import Verdict

VERDICTS = "notify_reconcile_verdicts"


class MongoReconciliations:
    """Verdicts in MongoDB (a handful of documents: one per period reconciled)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._verdicts = db[VERDICTS]

    async def verdicts(self, periods: Sequence[str]) -> dict[str, Verdict]:
        """See :class:`Reconciliations`."""
        out = {}
        for period in dict.fromkeys(periods):
            # by _id, one look-up per period (a bill has one or two): the filter FerretDB
            # answers from its index on every backend, unlike $in
            doc = await self._verdicts.find_one({"_id": period})
            if doc is None:
                continue
            checked_at = doc["checked_at"]
            if checked_at.tzinfo is None:  # the driver hands back naive UTC by default
                checked_at = checked_at.replace(tzinfo=UTC)
            out[str(doc["_id"])] = Verdict(
                period=str(doc["_id"]),
                reconciles=bool(doc["reconciles"]),
                unexplained=int(doc.get("unexplained", 0)),
                checked_at=checked_at,
            )
        return out

    async def keep(self, verdict: Verdict) -> bool:
        """See :class:`Reconciliations`: one single-document write, matched only where the kept
        verdict is older; where it is not, the upsert's insert meets the period's ``_id``."""
        try:
            await self._verdicts.update_one(
                {"_id": verdict.period, "checked_at": {"$lt": verdict.checked_at}},
                {
                    "$set": {
                        "reconciles": verdict.reconciles,
                        "unexplained": verdict.unexplained,
                        "checked_at": verdict.checked_at,
                    }
                },
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # a verdict checked at the same time or later is kept
        return True
