"""What rating keeps of its work, so a period can be re-rated: each record it rated, with the
price it charged, and each correction it emitted since.

Two collections, insert-only (FerretDB v1 updates documents one at a time, slowly):

* ``rating_records``: one document per consumer batch and customer: its records, each as a
  line ``<price of its charge>\t<its savings removed>\t<record JSON>`` (decimal strings,
  exact; lines kept before the savings were have no middle field), zlib-
  compressed (FerretDB stores 500 records as 500 strings in ~35 ms, compressed in ~5: JSON
  records repeat their field names), their customer, period and when they were rated (``at``;
  within a document, the batch order). That order is the order a period is
  re-rated in, so period-cumulative rules place records as they were placed the first time.
  The ``_id`` is a digest of the period, customer and record ids, so a redelivered batch is a
  duplicate, ignored; a record that comes again in a batch made up differently is kept twice,
  and reading keeps its first (earliest) copy.
* ``rating_corrections``: one document per correction charge, ``_id`` = its charge id, with
  its price and savings removed: re-rating corrections, and the re-pricing a reversal leaves
  in a running total (``<reversal id>:tiers``).

A record's current price is its charge's price plus its corrections' prices (and the same for
its savings removed). A reversal is charged minus its original's current price, which
:meth:`RatedStore.charged` reads: it scans the customer's documents of the period, so only
batches holding reversals pay for it.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from bson import Binary
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from billing_rating.domain.rerating import Emitted, savings_of
from billing_rating.ports import RatedRecord
from billing_schemas.events import RatedCharge, UsageRecord

RECORDS = "rating_records"
CORRECTIONS = "rating_corrections"


def _order() -> int:
    return time.time_ns()


Corrections = dict[str, list[tuple[Decimal, Decimal | None]]]
"""Per record id: the price and savings removed of each correction kept for it."""


def _with_corrections(base: Emitted, extra: list[tuple[Decimal, Decimal | None]]) -> Emitted:
    emitted = base
    for price, savings in extra:
        emitted = emitted.plus(price, savings)
    return emitted


def _current(
    records: list[tuple[tuple[int, int], RatedRecord]], corrections: Corrections
) -> list[RatedRecord]:
    """Records in rating order, each once (its first copy), with its corrections added."""
    out = []
    seen: set[str] = set()
    for _, rated in sorted(records, key=lambda r: r[0]):
        record_id = rated.record.record_id
        if record_id in seen:
            continue
        seen.add(record_id)
        emitted = _with_corrections(rated.emitted, corrections.get(record_id, []))
        out.append(RatedRecord(rated.record, rated.customer_id, emitted))
    return out


_record_json = UsageRecord.__pydantic_serializer__.to_json
_RECORD_ID_AT = len('{"record_id":')  # the record JSON's first field (the model's order)
_decoder = json.JSONDecoder()


def _pack(items: list[tuple[UsageRecord, RatedCharge]]) -> bytes:
    # JSON escapes tabs and newlines inside strings: both separators are safe
    lines = (
        b"%s\t%s\t%s"
        % (
            format(charge.price, "f").encode(),
            format(savings_of(charge), "f").encode(),
            _record_json(record),
        )
        for record, charge in items
    )
    return zlib.compress(b"\n".join(lines), 1)


def _lines(blob: bytes) -> list[tuple[Emitted, str]]:
    """Each line's charge (price and savings, ``None`` if not kept) and its record JSON."""
    out = []
    for line in zlib.decompress(blob).decode().split("\n"):
        price, *savings, text = line.split("\t", 2)
        kept = Decimal(savings[0]) if savings else None
        out.append((Emitted(Decimal(price), 1, kept), text))
    return out


def _unpack(blob: bytes) -> list[tuple[UsageRecord, Emitted]]:
    return [(UsageRecord.model_validate_json(text), e) for e, text in _lines(blob)]


def _record_id(text: str) -> str:
    """The record id of a record's JSON, read without validating the whole record (it is the
    first field; a JSON written otherwise is validated whole)."""
    if text.startswith('{"record_id":'):
        record_id: str = _decoder.raw_decode(text, _RECORD_ID_AT)[0]
        return record_id
    return UsageRecord.model_validate_json(text).record_id


def _savings(doc: dict[str, Any]) -> Decimal | None:
    return None if doc.get("savings") is None else Decimal(doc["savings"])


async def _insert_once(collection: AsyncCollection[dict[str, Any]], docs: list[Any]) -> None:
    if not docs:
        return
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        # a redelivered record (or a correction kept by an earlier run): the _id did its job
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise


class MongoRatedStore:
    """Rated records and corrections in MongoDB / FerretDB."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._records = db[RECORDS]
        self._corrections = db[CORRECTIONS]
        self._indexed = False

    async def _ensure_indexes(self) -> None:
        if not self._indexed:
            for collection in (self._records, self._corrections):
                await collection.create_index([("period", ASCENDING), ("customer_id", ASCENDING)])
            self._indexed = True

    async def save_rated(self, rated: Sequence[tuple[UsageRecord, RatedCharge]]) -> None:
        """See :class:`RatedStore`."""
        await self._ensure_indexes()
        at = _order()
        groups: dict[tuple[str, str], list[tuple[UsageRecord, RatedCharge]]] = {}
        for record, charge in rated:
            groups.setdefault((record.billing_period, charge.customer_id), []).append(
                (record, charge)
            )
        docs = []
        for (period, customer_id), items in groups.items():
            digest = hashlib.sha256()
            for record, _ in items:
                digest.update(record.record_id.encode())
                digest.update(b"\n")
            docs.append(
                {
                    "_id": f"{period}|{customer_id}|{digest.hexdigest()}",
                    "period": period,
                    "customer_id": customer_id,
                    "at": at,
                    "records": Binary(_pack(items)),
                }
            )
        await _insert_once(self._records, docs)

    async def save_corrections(self, charges: Sequence[RatedCharge]) -> None:
        """See :class:`RatedStore`."""
        await self._ensure_indexes()
        docs = [
            {
                "_id": c.charge_id,
                "record_id": c.record_id,
                "customer_id": c.customer_id,
                "period": c.billing_period,
                "price": format(c.price, "f"),
                "savings": format(savings_of(c), "f"),
            }
            for c in charges
        ]
        await _insert_once(self._corrections, docs)

    async def period(self, period: str, customer_id: str | None = None) -> list[RatedRecord]:
        """See :class:`RatedStore`."""
        await self._ensure_indexes()
        query: dict[str, Any] = {"period": period}
        if customer_id is not None:
            query["customer_id"] = customer_id
        corrections = await self._corrections_of(query)
        records = []
        async for doc in self._records.find(query):
            for i, (record, emitted) in enumerate(_unpack(doc["records"])):
                records.append(((doc["at"], i), RatedRecord(record, doc["customer_id"], emitted)))
        return _current(records, corrections)

    async def _corrections_of(self, query: dict[str, Any]) -> Corrections:
        corrections: Corrections = {}
        async for doc in self._corrections.find(query, {"record_id": 1, "price": 1, "savings": 1}):
            corrections.setdefault(doc["record_id"], []).append(
                (Decimal(doc["price"]), _savings(doc))
            )
        return corrections

    async def charged(
        self, period: str, customer_id: str, record_ids: Iterable[str]
    ) -> dict[str, Emitted]:
        """See :class:`RatedStore`: the first copy of each record, by rating order, with its
        corrections; the records' JSON is not validated, only their ids read."""
        await self._ensure_indexes()
        wanted = set(record_ids)
        if not wanted:
            return {}
        query: dict[str, Any] = {"period": period, "customer_id": customer_id}
        first: dict[str, tuple[tuple[int, int], Emitted]] = {}
        async for doc in self._records.find(query):
            for i, (emitted, text) in enumerate(_lines(doc["records"])):
                record_id = _record_id(text)
                order = (doc["at"], i)
                if record_id in wanted and (record_id not in first or order < first[record_id][0]):
                    first[record_id] = (order, emitted)
        corrections = await self._corrections_of({**query, "record_id": {"$in": sorted(first)}})
        return {
            rid: _with_corrections(emitted, corrections.get(rid, []))
            for rid, (_, emitted) in first.items()
        }
