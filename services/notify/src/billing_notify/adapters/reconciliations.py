"""Reads the last ``billing reconcile`` verdict of periods, for the operators' bill report.

The collection ``reconcile_results`` belongs to ``billing reconcile`` (one document per period,
``_id`` the period, with ``reconciles``, ``unexplained`` and ``checked_at``); notify only reads
it, as it reads ingest's rejected rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_notify.domain.bill_report import Verdict

RESULTS = "reconcile_results"
"""Owned by ``billing reconcile`` (``billing_cli.reconcile.service.RESULTS``)."""


class MongoReconciliations:
    """Verdicts in MongoDB (a handful of documents: one per period reconciled)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._results = db[RESULTS]

    async def verdicts(self, periods: Sequence[str]) -> dict[str, Verdict]:
        """See :class:`Reconciliations`."""
        out = {}
        for period in dict.fromkeys(periods):
            # by _id, one look-up per period (a bill has one or two): the filter FerretDB
            # answers from its index on every backend, unlike $in
            doc = await self._results.find_one({"_id": period})
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
