"""The bill registry in MongoDB: one document per loaded file, and its rejected rows.

A rejected row keeps its raw cells as a list of ``{"column", "value"}`` objects
(``raw_cells``), not as an object keyed by column: bills name columns ``service.id`` or
``$Cost``, and a MongoDB-wire database refuses keys with dots or a leading ``$`` (FerretDB
refuses every such key, MongoDB some). A list of objects (not of pairs: FerretDB v1 has no
nested arrays) stores any column name as a plain string.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from bson import Binary
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from billing_ingest.ports import PreviousBill
from billing_schemas.events import BillSummary, RejectedRow
from billing_schemas.money import to_fixed_units

BILLS = "ingest_bills"
REJECTIONS = "ingest_rejections"
LINES = "ingest_bill_lines"
REVERSALS = "ingest_reversals"
DUPLICATE_KEY = 11000
LOADED = ["processed", "partially_rejected", "rejected"]
"""Statuses of a bill read to the end (every row published or rejected)."""


class MongoBillRegistry:
    """:class:`BillRegistry` on MongoDB / FerretDB (single-document writes only)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._bills = db[BILLS]
        self._rejections = db[REJECTIONS]
        self._lines = db[LINES]
        self._reversals = db[REVERSALS]

    async def ensure_indexes(self) -> None:
        """Indexes used by listings and restatements."""
        await self._rejections.create_index([("bill_id", ASCENDING), ("seq", ASCENDING)])
        await self._lines.create_index([("bill_id", ASCENDING), ("chunk", ASCENDING)])
        await self._reversals.create_index([("chain", ASCENDING)])
        await self._bills.create_index([("scope", ASCENDING)])
        await self._bills.create_index([("chain", ASCENDING)])

    async def processed(self, bill_id: str) -> BillSummary | None:
        """See :class:`BillRegistry`."""
        doc = await self._bills.find_one({"_id": bill_id, "status": {"$in": LOADED}})
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
        # inserted, a retry's duplicates ignored (same ids, same content): FerretDB v1.24 never
        # answers a bulk write that changes about a hundred existing documents
        docs = [
            {
                "_id": f"{bill_id}:{row.row if row.row is not None else 'file'}:{i}",
                "bill_id": bill_id,
                "seq": row.row or 0,
                **_rejection_document(row),
            }
            for i, row in enumerate(rows)
        ]
        try:
            await self._rejections.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise

    async def finish(self, summary: BillSummary, *, chain: str) -> None:
        """See :class:`BillRegistry`."""
        await self._bills.update_one(
            {"_id": summary.bill_id},
            {
                "$set": {
                    "status": summary.status,
                    "scope": summary.scope,
                    "version": summary.version,
                    "chain": chain,
                    # the rejected rows it carries are in REJECTIONS, their raw cells encoded
                    # (a column name may hold a '.', which a stored key may not)
                    "summary": summary.model_dump(mode="json", exclude={"first_rejected_rows"}),
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

    async def fail(self, bill_id: str, error: str) -> None:
        """See :class:`BillRegistry`."""
        await self._bills.update_one(
            {"_id": bill_id},
            {"$set": {"status": "failed", "error": error[:2000], "updated_at": datetime.now(UTC)}},
        )

    async def previous_version(self, scope_entry: str, *, exclude: str) -> PreviousBill | None:
        """See :class:`BillRegistry`."""
        cursor = (
            self._bills.find(
                {
                    "scope": scope_entry,
                    "status": {"$in": LOADED},
                    "_id": {"$ne": exclude},
                }
            )
            .sort([("version", DESCENDING), ("updated_at", DESCENDING)])
            .limit(1)
        )
        async for doc in cursor:
            return PreviousBill(doc["_id"], doc["version"], doc["chain"], list(doc["scope"]))
        return None

    async def latest_in_chain(self, bill_id: str) -> BillSummary | None:
        """See :class:`BillRegistry`."""
        doc = await self._bills.find_one({"_id": bill_id}, {"chain": 1})
        if doc is None or "chain" not in doc:
            return None
        cursor = (
            self._bills.find({"chain": doc["chain"], "status": {"$in": LOADED}}, {"summary": 1})
            .sort([("version", DESCENDING)])
            .limit(1)
        )
        async for latest in cursor:
            return BillSummary.model_validate(latest["summary"])
        return None

    async def add_lines(self, bill_id: str, chunk: int, ids: list[str], payloads: bytes) -> None:
        """See :class:`BillRegistry`. A chunk written by an earlier, crashed run is kept."""
        with suppress(DuplicateKeyError):  # an earlier, crashed run wrote the same chunk
            await self._lines.insert_one(
                {
                    "_id": f"{bill_id}:{chunk}",
                    "bill_id": bill_id,
                    "chunk": chunk,
                    "ids": ids,
                    "payloads": Binary(payloads),
                }
            )

    async def line_ids(self, bill_id: str) -> set[str]:
        """See :class:`BillRegistry`."""
        cursor = self._lines.find({"bill_id": bill_id}, {"ids": 1})
        return {record_id async for doc in cursor for record_id in doc["ids"]}

    async def lines(self, bill_id: str) -> AsyncIterator[tuple[list[str], bytes]]:
        """See :class:`BillRegistry`."""
        cursor = self._lines.find({"bill_id": bill_id}).sort("chunk", ASCENDING)
        async for doc in cursor:
            yield list(doc["ids"]), bytes(doc["payloads"])

    async def reversed_ids(self, chain: str) -> set[str]:
        """See :class:`BillRegistry`."""
        return {doc["_id"] async for doc in self._reversals.find({"chain": chain}, {"_id": 1})}

    async def add_reversed(self, chain: str, bill_id: str, ids: list[str]) -> None:
        """See :class:`BillRegistry`."""
        if not ids:
            return
        try:
            await self._reversals.insert_many(
                [{"_id": i, "chain": chain, "bill_id": bill_id} for i in ids], ordered=False
            )
        except BulkWriteError as exc:  # some were recorded by an earlier, crashed run
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def bill(self, bill_id: str) -> dict[str, Any] | None:
        """One bill's registry document."""
        return await self._bills.find_one({"_id": bill_id})

    async def list_bills(self, limit: int = 50, period: str | None = None) -> list[dict[str, Any]]:
        """The most recent bills (those billing ``period`` when given), newest first."""
        query = {} if period is None else {"summary.billing_periods": period}
        cursor = self._bills.find(query).sort("created_at", -1).limit(limit)
        return [doc async for doc in cursor]

    async def rejections(self, bill_id: str) -> list[RejectedRow]:
        """A bill's rejected rows in row order."""
        cursor = self._rejections.find({"bill_id": bill_id}).sort("seq", 1)
        return [_rejected_row(doc) async for doc in cursor]


def _rejection_document(row: RejectedRow) -> dict[str, Any]:
    """A rejected row as stored: its fields, the raw cells as a list (see the module doc)."""
    doc = row.model_dump(mode="json", exclude={"raw"})
    doc["raw_cells"] = [{"column": c, "value": v} for c, v in row.raw.items()]
    return doc


def _rejected_row(doc: dict[str, Any]) -> RejectedRow:
    fields = RejectedRow.model_fields
    kept = {k: v for k, v in doc.items() if k in fields and k != "raw"}
    if "raw_cells" in doc:
        raw = {cell["column"]: cell["value"] for cell in doc["raw_cells"]}
    else:  # stored before raw_cells, when no column name had a dot in it
        raw = doc.get("raw") or {}
    return RejectedRow.model_validate({**kept, "raw": raw})
