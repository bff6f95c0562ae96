"""The keys of the invoice list in MongoDB / FerretDB, so a page of the list, an invoice found
by number and the operator's filters read a bounded number of documents, each by ``_id``.

FerretDB answers no filter but ``_id`` equality from an index (its SQLite backend reads and
filters every stored document for anything else; docs/operations.md, "The database
backend"), and sorts and skips in memory. So ``INVOICE_KEYS`` holds, maintained on write and
read by ``_id`` only (``domain/listing.py`` for the order and the buckets):

* ``customer:<id>``: the ids of the customer's invoices (an id, ``<customer>:<period>``, is
  its key's customer and period);
* ``period:<YYYY-MM>``: the ids of the period's invoices; ``periods``: every period;
* ``total:<bucket>``: the ids of the issued invoices whose total is in the bucket;
  ``totals``: every bucket;
* ``number:<number>``: the invoice id of an issued number.

A key document keeps its values in two places: ``keys``, an array that writes add to
(``$addToSet``), and ``packed``, segments each holding many values as one JSON string. Each
time a process has added :data:`PACK_AT` values to a document, it moves the array into a new
segment if it holds that many (one update; many segments are merged into one): FerretDB
converts a stored array element by element, so a customer's 10,000 ids took 120-330 ms to
read as an array and 3-8 ms packed. A reader takes both, each value once (a re-written value
may be in both).

A customer's ids in list order are kept in the process between pages (:data:`KEPT_ORDERS`),
checked against ``stamp:customer:<id>``, a document each write of the customer's key sets
to a new random token *after* changing the key (a reader reads the stamp first): a reader
that finds the token it kept knows no write came since (one of two concurrent stamp writes
may be lost, but the other's token is new too). Reading a customer's 10,000 ids and putting
them in order cost 30-130 ms on two loaded cores; the stamp, 1-6 ms.

A page's invoices that have a row (``adapters/invoice_rows.py``: issued ones) are read from
their rows' blocks, one or two documents for a customer's page; the others (drafts, an
invoice being finalized, or a page spread over more blocks) by ``_id``.

Every write is idempotent (``$addToSet``, an insert that a duplicate makes a no-op) and made
*before* the invoice write it indexes, so a crash in between leaves a key whose document does
not exist yet (skipped when read) and the retry writes the same key again. Keys are never
removed (invoices are never deleted). :meth:`InvoiceKeys.rebuild` indexes what was stored
before these keys existed (once, at start-up; the benchmark after seeding).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from billing_invoicing.adapters.invoice_rows import ROW_FIELDS, InvoiceRows, row_of
from billing_invoicing.domain.listing import (
    Key,
    buckets_to_read,
    ids_in_list_order,
    total_buckets,
)
from billing_invoicing.domain.model import parse_invoice_id
from billing_invoicing.domain.units import from_units

Doc = dict[str, Any]
INVOICE_KEYS = "invoicing_invoice_keys"
READ_CHUNK = 64
PACK_AT = 64
"""Ids added to a key document's array (``keys``) before they are packed into one string of
its ``packed`` segments: FerretDB converts a stored array element by element (a key document
of 10,000 ids: 120-330 ms to read), a string at once (the same ids packed: 3-8 ms)."""
MERGE_AT = 32
"""Segments after which a key document's segments are merged into one."""
"""Invoices read at once (concurrently, each by ``_id``) while a filtered page is filled."""
_BUILT = "built"
KEPT_ORDERS = 16
"""Customers whose ids in list order a process keeps (those of at least
:data:`KEEP_FROM` invoices; a few MB each at 10,000)."""
KEEP_FROM = 500


@dataclass(frozen=True)
class KeyFilter:
    """What the keys alone can narrow: a customer, a period, a total range (bounds in the
    invoice's own currency, tax included)."""

    customer_id: str | None = None
    period: str | None = None
    min_total: Decimal | None = None
    max_total: Decimal | None = None


def unpacked(segments: Iterable[Any]) -> list[Any]:
    """The values of a key document's packed segments (each a JSON array), in order."""
    return [v for segment in segments for v in json.loads(str(segment))]


def _key(invoice_id: Any) -> Key:
    customer, period = parse_invoice_id(str(invoice_id))
    return period, customer, str(invoice_id)


class InvoiceKeys:
    """The list's keys (see the module docstring) and the pages read through them."""

    def __init__(
        self, db: AsyncDatabase[Doc], invoices: str, rows: InvoiceRows | None = None
    ) -> None:
        self._keys = db[INVOICE_KEYS]
        self._invoices = db[invoices]
        self._rows = InvoiceRows(db) if rows is None else rows
        self._known_periods: set[str] = set()
        self._known_buckets: set[str] = set()
        # FerretDB applies an update by reading the document, changing it and writing it back,
        # without a lock: two `$addToSet`s on one key document at once can lose one of the two
        # (seen: 30 of 40 invoices indexed at once missing from their period's key). The close
        # indexes the invoices it freezes concurrently, so this process writes one key at a time.
        self._writing = asyncio.Lock()
        self._unpacked: dict[str, int] = defaultdict(int)
        self._orders: OrderedDict[str, tuple[str, list[Key]]] = OrderedDict()

    # --- writes ---------------------------------------------------------------------------

    async def _add(self, doc_id: str, values: list[Any]) -> None:
        update = {"$addToSet": {"keys": {"$each": values}}}
        async with self._writing:
            try:
                await self._keys.update_one({"_id": doc_id}, update, upsert=True)
            except DuplicateKeyError:
                # another process upserted the same new key document at once: it exists now
                await self._keys.update_one({"_id": doc_id}, update, upsert=True)
            self._unpacked[doc_id] += len(values)
            if self._unpacked[doc_id] >= PACK_AT:
                del self._unpacked[doc_id]
                await self._pack(doc_id)
            if doc_id.startswith("customer:"):
                await self._stamp(doc_id)

    async def _stamp(self, doc_id: str) -> None:
        """Tell readers that kept the key's order that it changed (after the change)."""
        stamp = {"$set": {"token": uuid.uuid4().hex}}
        try:
            await self._keys.update_one({"_id": f"stamp:{doc_id}"}, stamp, upsert=True)
        except DuplicateKeyError:  # another process upserted it at once: it exists now
            await self._keys.update_one({"_id": f"stamp:{doc_id}"}, stamp, upsert=True)

    async def _pack(self, doc_id: str) -> None:
        """Move the ids of the document's array into a packed segment (one update, so a
        reader sees them in one place or the other; merged into one segment when there are
        many)."""
        doc = await self._keys.find_one({"_id": doc_id})
        tail = [] if doc is None else list(doc.get("keys", []))
        if len(tail) < PACK_AT:  # re-writes of values packed already, or a short list
            return
        packed = [str(s) for s in (doc or {}).get("packed", [])]
        if len(packed) + 1 >= MERGE_AT:
            merged = [*dict.fromkeys(unpacked(packed) + tail)]
            change: Doc = {"$set": {"packed": [json.dumps(merged)]}}
        else:
            change = {"$push": {"packed": json.dumps(tail)}}
        await self._keys.update_one({"_id": doc_id}, change | {"$pullAll": {"keys": tail}})

    async def add_invoices(self, invoice_ids: Iterable[str]) -> None:
        """Index new invoices (drafts) under their customer and period: one write per
        customer and per period, plus one when a period is new."""
        keys = [_key(i) for i in sorted(set(invoice_ids))]
        by_customer: dict[str, list[str]] = defaultdict(list)
        by_period: dict[str, list[str]] = defaultdict(list)
        for period, customer, invoice_id in keys:
            by_customer[customer].append(invoice_id)
            by_period[period].append(invoice_id)
        new_periods = sorted(set(by_period) - self._known_periods)
        if new_periods:
            await self._add("periods", list(new_periods))
        for period, values in sorted(by_period.items()):
            await self._add(f"period:{period}", values)
        for customer, values in sorted(by_customer.items()):
            await self._add(f"customer:{customer}", values)
        self._known_periods.update(new_periods)

    async def add_issued(self, invoice_id: str, number: str, total: Decimal) -> None:
        """Index an issued invoice by its number and its total's bucket."""
        with contextlib.suppress(DuplicateKeyError):  # indexed before (a retried finalization)
            await self._keys.insert_one({"_id": f"number:{number}", "invoice_id": invoice_id})
        buckets = total_buckets(total)
        new = [b for b in buckets if b not in self._known_buckets]
        if new:
            await self._add("totals", new)
            self._known_buckets.update(new)
        for bucket in buckets:
            await self._add(f"total:{bucket}", [invoice_id])

    async def rebuild(self) -> int:
        """Index every stored invoice and write its list row (one read of them all), unless
        done before (the keys and the rows each once); how many invoices were indexed. Safe
        while invoices are being written (adds only; a row only over an older one)."""
        keys_built = await self._keys.find_one({"_id": _BUILT}) is not None
        rows_built = await self._rows.built()
        if keys_built and rows_built:
            return 0
        ids: list[str] = []
        issued: list[tuple[str, str, Decimal]] = []
        rows: list[Doc] = []
        projection = dict.fromkeys(("number", "total_units", "currency", "version"), 1)
        if not rows_built:
            projection |= dict.fromkeys(ROW_FIELDS, 1)
        async for doc in self._invoices.find({}, projection):
            ids.append(str(doc["_id"]))
            if doc.get("number") and doc.get("total_units") is not None:
                total = from_units(int(doc["total_units"]), doc.get("currency"))
                issued.append((str(doc["_id"]), str(doc["number"]), total))
            if not rows_built and (row := row_of(doc)) is not None:
                rows.append(row)
        if not keys_built:
            await self._add_many(ids, issued)
            await self._keys.update_one({"_id": _BUILT}, {"$set": {"count": len(ids)}}, upsert=True)
        if not rows_built:
            await self._rows.add_many(rows)
        return len(ids)

    async def _add_many(self, ids: list[str], issued: list[tuple[str, str, Decimal]]) -> None:
        """Many keys at once: new key documents inserted together, existing ones added to."""
        grouped: dict[str, list[Any]] = defaultdict(list)
        for invoice_id in ids:
            period, customer, _ = _key(invoice_id)
            grouped[f"customer:{customer}"].append(invoice_id)
            grouped[f"period:{period}"].append(invoice_id)
            grouped["periods"].append(period)
        numbers = []
        for invoice_id, number, total in issued:
            for bucket in total_buckets(total):
                grouped[f"total:{bucket}"].append(invoice_id)
                grouped["totals"].append(bucket)
            numbers.append({"_id": f"number:{number}", "invoice_id": invoice_id})
        for doc_id in ("periods", "totals"):
            if doc_id in grouped:
                grouped[doc_id] = sorted(set(grouped[doc_id]))
        # one read of the key ids (a rebuild runs once: no ``$in`` of thousands of ids)
        existing = {str(d["_id"]) async for d in self._keys.find({}, {"_id": 1})}
        stored = existing & set(grouped)
        new = [
            {"_id": k, "keys": [], "packed": [json.dumps(v)]}
            for k, v in sorted(grouped.items())
            if k not in stored
        ]
        if new:
            await self._keys.insert_many(new, ordered=False)
        stamps = [
            {"_id": f"stamp:{d['_id']}", "token": uuid.uuid4().hex}
            for d in new
            if str(d["_id"]).startswith("customer:")
        ]
        if stamps:  # new keys: a stamp already there (a retried rebuild) is as good
            with contextlib.suppress(BulkWriteError):
                await self._keys.insert_many(stamps, ordered=False)
        for doc_id in sorted(stored):
            await self._add(str(doc_id), grouped[str(doc_id)])
        fresh = [n for n in numbers if n["_id"] not in existing]
        for start in range(0, len(fresh), 5000):
            await self._keys.insert_many(fresh[start : start + 5000], ordered=False)

    # --- reads ----------------------------------------------------------------------------

    async def _values(self, doc_id: str) -> list[Any]:
        """The ids (or periods, buckets) of a key document: its packed segments and its array,
        each once (a re-written id may be in both)."""
        doc = await self._keys.find_one({"_id": doc_id})
        if doc is None:
            return []
        return [*dict.fromkeys(unpacked(doc.get("packed", [])) + list(doc.get("keys", [])))]

    async def _customer_order(self, customer_id: str) -> list[Key]:
        """A customer's keys in list order: kept from an earlier page while its stamp says no
        write came since (see the module docstring)."""
        doc_id = f"customer:{customer_id}"
        stamp = await self._keys.find_one({"_id": f"stamp:{doc_id}"})
        token = None if stamp is None else str(stamp["token"])
        kept = self._orders.get(doc_id)
        if token is not None and kept is not None and kept[0] == token:
            self._orders.move_to_end(doc_id)
            return kept[1]
        order = ids_in_list_order(str(v) for v in await self._values(doc_id))
        if token is not None and len(order) >= KEEP_FROM:
            self._orders[doc_id] = (token, order)
            while len(self._orders) > KEPT_ORDERS:
                self._orders.popitem(last=False)
        return order

    async def invoice_id_of(self, number: str) -> str | None:
        """The id of the invoice issued with ``number``, or None."""
        doc = await self._keys.find_one({"_id": f"number:{number}"})
        return None if doc is None else str(doc["invoice_id"])

    async def _candidates(self, wanted: KeyFilter) -> AsyncIterator[list[Key]]:
        """Keys in list order that may match, in runs: from the narrowest source the filter
        names (a customer, a period, a total range), else period after period."""
        keep: Callable[[Key], bool] = lambda k: (  # noqa: E731
            (wanted.customer_id is None or k[1] == wanted.customer_id)
            and (wanted.period is None or k[0] == wanted.period)
        )
        if wanted.customer_id is not None:
            yield [k for k in await self._customer_order(wanted.customer_id) if keep(k)]
            return
        if wanted.period is not None:
            ids = [str(v) for v in await self._values(f"period:{wanted.period}")]
        elif wanted.min_total is not None or wanted.max_total is not None:
            existing = [str(b) for b in await self._values("totals")]
            buckets = buckets_to_read(existing, wanted.min_total, wanted.max_total)
            found = await asyncio.gather(*(self._values(f"total:{b}") for b in buckets))
            ids = [str(v) for values in found for v in values]
        else:
            for period in sorted(await self._values("periods"), reverse=True):
                yield ids_in_list_order(str(v) for v in await self._values(f"period:{period}"))
            return
        yield [k for k in ids_in_list_order(ids) if keep(k)]

    async def _read(self, keys: list[Key], projection: Doc | None) -> list[Doc]:
        """The invoices of these keys, in their order: their rows where they have one (when
        the assembled document is not wanted), the others one ``_id`` look-up each, at once;
        a key whose invoice is not stored yet is skipped."""
        rows: dict[str, Doc] = {}
        if projection is not None and projection.get("document") == 0:
            rows = await self._rows.read(k[2] for k in keys) or {}
        others = [k[2] for k in keys if k[2] not in rows]
        found = await asyncio.gather(
            *(self._invoices.find_one({"_id": i}, projection) for i in others)
        )
        read = {str(d["_id"]): d for d in found if d is not None}
        return [d for k in keys if (d := rows.get(k[2]) or read.get(k[2])) is not None]

    async def page(
        self,
        wanted: KeyFilter,
        matches: Callable[[Doc], bool] | None,
        *,
        offset: int,
        limit: int,
        projection: Doc | None,
    ) -> list[Doc]:
        """Up to ``limit`` invoices from the ``offset``-th that match, in list order.

        Without ``matches`` (nothing but what the keys narrow), the page is a slice of the
        keys: ``limit`` reads. With it, invoices are read a run at a time until the page is
        full: a filter the keys cannot narrow (a status) reads as many invoices as it takes.
        """
        out: list[Doc] = []
        skipped = 0
        async for keys in self._candidates(wanted):
            if matches is None:
                if skipped + len(keys) <= offset:
                    skipped += len(keys)
                    continue
                wanted_keys = keys[max(offset - skipped, 0) :]
                skipped = offset
                start = 0
                while start < len(wanted_keys):
                    # as many as the page still needs (a key without its invoice yet is
                    # skipped, so the next read starts after the last key read)
                    size = min(READ_CHUNK, limit - len(out))
                    out += await self._read(wanted_keys[start : start + size], projection)
                    if len(out) >= limit:
                        return out
                    start += size
                continue
            start = 0
            while start < len(keys):
                # as many as the page still needs (all of them may match), at most a chunk
                size = min(max(offset - skipped + limit - len(out), 8), READ_CHUNK)
                for doc in await self._read(keys[start : start + size], projection):
                    if not matches(doc):
                        continue
                    if skipped < offset:
                        skipped += 1
                        continue
                    out.append(doc)
                    if len(out) >= limit:
                        return out
                start += size
        return out
