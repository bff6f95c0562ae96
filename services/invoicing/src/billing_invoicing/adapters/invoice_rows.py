"""The rows of the invoice list in MongoDB / FerretDB, so a page of the list reads a few
documents by ``_id`` instead of its 51 invoices one by one.

FerretDB pushes down neither ``$in`` nor ``$or`` (docs/operations.md, "The database backend"),
and each ``find_one`` by ``_id`` costs it a PostgreSQL query and the conversion of the whole
stored invoice: a page's 51 invoices took 240-700 ms on two loaded cores, two documents
holding the same rows as one JSON string each 11-110 ms. So ``INVOICE_ROWS`` keeps, for each
issued invoice, the row the list shows (number, status, dates, total, outstanding, credited,
currency, whether it has a PDF, and the invoice's version), in *blocks*: one document per
customer and decade of periods (``rows:<customer>:<YYY>``, at most 120 invoices of a customer
issuing monthly), its rows in one JSON string. A customer's list runs by period, so a page of
it reads one or two blocks. A draft has no row (its total is its ledger's, read fresh), nor
has an invoice being finalized; the list reads those invoices themselves.

A row is written *before* the invoice write it mirrors, under the invoice's next version:
a crash in between leaves a row ahead of a write that its retry makes (the close comes again
from the charge stream; a settlement write is stored first and applied, with its row, by the
next reader of the invoice: ``invoice_repo.MongoInvoiceRepository._fresh``). A block holds
many invoices' rows and FerretDB loses one of two concurrent updates of a document, so a block
is changed only under its lock, a document of ``ROW_LOCKS`` inserted under the block's id (a
unique ``_id``: of two writers, one waits) and deleted after; one left by a crashed writer
expires after :data:`LOCK_EXPIRY_SECONDS`. Within a block a row is replaced only by one of the
same or a later version, so a late writer never puts an older state back.
:meth:`InvoiceRows.add_many` writes the rows of invoices stored before rows were kept (once,
at start-up, with the list's keys: ``invoice_keys.InvoiceKeys.rebuild``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from billing_invoicing.domain.model import parse_invoice_id

Doc = dict[str, Any]
INVOICE_ROWS = "invoicing_invoice_rows"
ROW_LOCKS = "invoicing_invoice_row_locks"
ROW_FIELDS = (
    "customer_id",
    "period",
    "status",
    "number",
    "issue_date",
    "due_date",
    "currency",
    "total_units",
    "outstanding_units",
    "credited_units",
    "pdf_file_id",
)
"""What a row keeps of its invoice: what the list shows and filters on (``stored_rows``
reads a row as it reads an invoice)."""
LOCK_EXPIRY_SECONDS = 30.0
"""After this long a block's lock is taken as left by a crashed writer (a block write takes
a few milliseconds)."""
MAX_BLOCKS = 8
"""Blocks a page reads at most; a page whose invoices lie in more (a period's or a total
range's, across customers) reads its invoices by ``_id`` instead."""
_BUILT = "built"


def block_of(invoice_id: str) -> str:
    """The block of an invoice's row: its customer and the decade of its period."""
    customer, period = parse_invoice_id(invoice_id)
    return f"rows:{customer}:{period[:3]}"


def row_of(doc: Mapping[str, Any]) -> Doc | None:
    """The list row of an invoice document as stored (or about to be: ``_id``, ``version``
    and the fields), or None for an invoice not issued yet."""
    if not doc.get("number") or doc.get("total_units") is None:
        return None
    row: Doc = {name: doc.get(name) for name in ROW_FIELDS}
    row["_id"] = str(doc["_id"])
    row["pdf_file_id"] = None if row["pdf_file_id"] is None else str(row["pdf_file_id"])
    row["version"] = int(doc.get("version", 1))
    return row


def _rows_of(block: Mapping[str, Any] | None) -> dict[str, Doc]:
    if block is None:
        return {}
    rows: dict[str, Doc] = json.loads(str(block["rows"]))
    return rows


def _merged(stored: dict[str, Doc], rows: Iterable[Doc]) -> bool:
    """Put ``rows`` into ``stored`` where none of a later version is there; whether any
    changed."""
    changed = False
    for row in rows:
        held = stored.get(row["_id"])
        if held is not None and (int(held["version"]) > row["version"] or held == row):
            continue
        stored[row["_id"]] = row
        changed = True
    return changed


class InvoiceRows:
    """The list's rows (see the module docstring)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._rows = db[INVOICE_ROWS]
        self._locks = db[ROW_LOCKS]
        # writers of this process wait for each other here, not by polling the lock document
        self._local: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @contextlib.asynccontextmanager
    async def _locked(self, block: str) -> AsyncIterator[None]:
        async with self._local[block]:
            owner = uuid.uuid4().hex
            pause = 0.005
            while True:
                try:
                    await self._locks.insert_one({"_id": block, "owner": owner, "at": time.time()})
                    break
                except DuplicateKeyError:
                    held = await self._locks.find_one({"_id": block})
                    if held is not None and time.time() - float(held["at"]) > LOCK_EXPIRY_SECONDS:
                        # left by a writer that crashed: taken over (of two at once, one wins)
                        await self._locks.delete_one({"_id": block, "owner": held["owner"]})
                        continue
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.2)
            try:
                yield
            finally:
                await self._locks.delete_one({"_id": block, "owner": owner})
                self._local.pop(block, None)

    async def write(self, rows: Iterable[Doc]) -> None:
        """Store these rows (each in its block, under the block's lock; one read and at most
        one write per block)."""
        by_block: dict[str, list[Doc]] = defaultdict(list)
        for row in rows:
            by_block[block_of(row["_id"])].append(row)
        for block, changed in sorted(by_block.items()):
            async with self._locked(block):
                stored = _rows_of(await self._rows.find_one({"_id": block}))
                if _merged(stored, changed):
                    text = json.dumps(stored, sort_keys=True, separators=(",", ":"))
                    await self._rows.update_one(
                        {"_id": block}, {"$set": {"rows": text}}, upsert=True
                    )

    async def read(self, invoice_ids: Iterable[str]) -> dict[str, Doc] | None:
        """The stored rows of these invoices (those that have one), by id; None when they lie
        in more than :data:`MAX_BLOCKS` blocks."""
        wanted = set(invoice_ids)
        blocks = sorted({block_of(i) for i in wanted})
        if len(blocks) > MAX_BLOCKS:
            return None
        found = await asyncio.gather(*(self._rows.find_one({"_id": b}) for b in blocks))
        return {i: row for doc in found for i, row in _rows_of(doc).items() if i in wanted}

    async def built(self) -> bool:
        """Whether the rows of the invoices stored before rows were kept are written."""
        return await self._rows.find_one({"_id": _BUILT}, {"_id": 1}) is not None

    async def add_many(self, rows: list[Doc]) -> None:
        """Many rows at once, then remember it is done: new blocks inserted together, those
        that exist (written meanwhile) merged under their lock."""
        by_block: dict[str, dict[str, Doc]] = defaultdict(dict)
        for row in rows:
            by_block[block_of(row["_id"])][row["_id"]] = row
        existing = {str(d["_id"]) async for d in self._rows.find({}, {"_id": 1})}
        new = [
            {"_id": b, "rows": json.dumps(r, sort_keys=True, separators=(",", ":"))}
            for b, r in sorted(by_block.items())
            if b not in existing
        ]
        taken: set[str] = set()
        for start in range(0, len(new), 1000):
            try:
                await self._rows.insert_many(new[start : start + 1000], ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                taken |= {str(new[start + int(e["index"])]["_id"]) for e in errors}
        for block in sorted((existing | taken) & set(by_block)):
            await self.write(by_block[block].values())
        await self._rows.update_one({"_id": _BUILT}, {"$set": {"count": len(rows)}}, upsert=True)
