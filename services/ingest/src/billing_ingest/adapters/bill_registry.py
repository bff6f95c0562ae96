"""The bill registry in MongoDB: one document per loaded file, and its rejected rows."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from billing_schemas.events import BillSummary, RejectedRow
from billing_schemas.money import to_fixed_units

BILLS = "ingest_bills"
REJECTIONS = "ingest_rejections"


class BillRegistry(Protocol):
    """Port: remember which bills were loaded, their figures and their rejected rows."""

    async def processed(self, bill_id: str) -> BillSummary | None:
        """The summary of a bill that was loaded to the end, else None."""
        ...

    async def begin(self, *, bill_id: str, file_name: str, checksum: str, fmt: str) -> None:
        """Record that loading started (status processing)."""
        ...

    async def add_rejections(self, bill_id: str, rows: list[RejectedRow]) -> None:
        """Keep rejected rows (idempotent per bill and row)."""
        ...

    async def finish(self, summary: BillSummary) -> None:
        """Record the final figures and status."""
        ...


class MongoBillRegistry:
    """:class:`BillRegistry` on MongoDB / FerretDB (single-document writes only)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._bills = db[BILLS]
        self._rejections = db[REJECTIONS]

    async def ensure_indexes(self) -> None:
        """Indexes used by listings."""
        await self._rejections.create_index([("bill_id", ASCENDING), ("seq", ASCENDING)])

    async def processed(self, bill_id: str) -> BillSummary | None:
        """See :class:`BillRegistry`."""
        doc = await self._bills.find_one({"_id": bill_id, "status": {"$ne": "processing"}})
        return None if doc is None else BillSummary.model_validate(doc["summary"])

    async def begin(self, *, bill_id: str, file_name: str, checksum: str, fmt: str) -> None:
        """See :class:`BillRegistry`."""
        now = datetime.now(UTC)
        await self._bills.update_one(
            {"_id": bill_id},
            {
                "$set": {"status": "processing", "file_name": file_name, "updated_at": now},
                "$setOnInsert": {"checksum_sha256": checksum, "format": fmt, "created_at": now},
            },
            upsert=True,
        )

    async def add_rejections(self, bill_id: str, rows: list[RejectedRow]) -> None:
        """See :class:`BillRegistry`."""
        if not rows:
            return
        ops = [
            UpdateOne(
                {"_id": f"{bill_id}:{row.row if row.row is not None else 'file'}:{i}"},
                {"$set": {"bill_id": bill_id, "seq": row.row or 0, **row.model_dump(mode="json")}},
                upsert=True,
            )
            for i, row in enumerate(rows)
        ]
        await self._rejections.bulk_write(ops, ordered=False)

    async def finish(self, summary: BillSummary) -> None:
        """See :class:`BillRegistry`."""
        await self._bills.update_one(
            {"_id": summary.bill_id},
            {
                "$set": {
                    "status": summary.status,
                    "summary": summary.model_dump(mode="json"),
                    "rows_read": summary.rows_read,
                    "rows_accepted": summary.rows_accepted,
                    "rows_rejected": summary.rows_rejected,
                    # fixed units: integers the database can sum exactly
                    "billed_cost_units": {
                        c: to_fixed_units(a) for c, a in summary.billed_cost_totals.items()
                    },
                    "updated_at": datetime.now(UTC),
                }
            },
        )

    async def bill(self, bill_id: str) -> dict[str, Any] | None:
        """One bill's registry document."""
        return await self._bills.find_one({"_id": bill_id})

    async def list_bills(self, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent bills, newest first."""
        cursor = self._bills.find({}).sort("created_at", -1).limit(limit)
        return [doc async for doc in cursor]

    async def rejections(self, bill_id: str) -> list[RejectedRow]:
        """A bill's rejected rows in row order."""
        cursor = self._rejections.find({"bill_id": bill_id}).sort("seq", 1)
        fields = RejectedRow.model_fields
        return [
            RejectedRow.model_validate({k: v for k, v in doc.items() if k in fields})
            async for doc in cursor
        ]


class InMemoryBillRegistry:
    """Fake of :class:`BillRegistry` for unit tests."""

    def __init__(self) -> None:
        self.done: dict[str, BillSummary] = {}
        self.rejections: dict[str, list[RejectedRow]] = defaultdict(list)
        self.begun: list[str] = []

    async def processed(self, bill_id: str) -> BillSummary | None:
        return self.done.get(bill_id)

    async def begin(self, *, bill_id: str, file_name: str, checksum: str, fmt: str) -> None:
        self.begun.append(bill_id)

    async def add_rejections(self, bill_id: str, rows: list[RejectedRow]) -> None:
        self.rejections[bill_id] += rows

    async def finish(self, summary: BillSummary) -> None:
        self.done[summary.bill_id] = summary
