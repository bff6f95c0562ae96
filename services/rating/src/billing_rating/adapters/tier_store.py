"""Where the period state of cumulative rules lives: one document per place in a running total.

Only single-document inserts (FerretDB has no transactions), and only ``_id`` equality lookups
on the hot path: FerretDB v1 answers ``_id`` equality from its primary key but scans the
collection for ``$in``, ``_id`` ranges and ``find({key}).sort(seq)`` (0.4-1 s per query at 8,000
claims, measured). So:

* A claim is stored under ``_id = key#seq``, its place. The ``_id`` lets only one writer take
  the next place of a key: two consumers rating the same customer cannot both place records at
  the same point of its running total; the second insert fails and its batch is rated again.
* A unique index on ``(key, record_id)`` lets a record hold one place only: a redelivered record
  rated as new fails to insert, and its batch is rated again with the claims it already has.
* The store keeps the latest claim of each key it has seen (its *head*) and rates the next batch
  from it without asking the database: the insert is the check. A key it has not seen, or whose
  head turned out stale, is found by probing ``key#seq`` by ``_id``: doubling, then bisecting
  (places are numbered 1, 2, 3... without gaps: claims are inserted in order, stopping at the
  first conflict).
* Only after a conflict on a record (a redelivery), or for a batch holding reversals, are a
  batch's own claims looked up: one equality on ``(key, record_id)`` per record, which
  FerretDB over PostgreSQL answers from that index's GIN twin. Over SQLite, which pushes down
  only ``_id``, each would be a scan: there one ``$in`` query reads the collection once
  (docs/operations.md, "The database backend").
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from billing_rating.domain.tiers import Claim, TierState
from billing_rating.ports import ClaimConflictError
from billing_runtime.mongo import explain_query

CLAIMS = "rating_tier_places"
"""One document per claim, ``_id`` = its place (``key#seq``). Replaces ``rating_tier_claims``
(``_id`` = ``key#record_id``, found by scans), whose claims are not carried over."""


RECORD_LOOKUPS = 32
"""Claims of a batch's records read back at once (after a redelivery, or for a reversal)."""


def place_id(key: str, seq: int) -> str:
    """The document id of the ``seq``-th place of a key."""
    return f"{key}#{seq}"


def _claim(doc: dict[str, Any]) -> Claim:
    return Claim(
        doc["key"],
        doc["record_id"],
        doc["seq"],
        Decimal(doc["start"]),
        Decimal(doc["end"]),
        doc.get("live"),
        doc.get("reverses"),
    )


def _document(claim: Claim) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": place_id(claim.key, claim.seq),
        "key": claim.key,
        "record_id": claim.record_id,
        "seq": claim.seq,
        "start": format(claim.start, "f"),
        "end": format(claim.end, "f"),
    }
    # only once a reversal made them differ from the defaults (most keys never have one)
    if claim.live is not None:
        doc["live"] = claim.live
    if claim.reverses is not None:
        doc["reverses"] = claim.reverses
    return doc


async def _latest(
    places: AsyncCollection[dict[str, Any]], key: str, known: Claim | None
) -> Claim | None:
    """The last place of a key, probing by ``_id`` from a place known to exist."""

    async def at(seq: int) -> Claim | None:
        doc = await places.find_one({"_id": place_id(key, seq)})
        return None if doc is None else _claim(doc)

    found = known
    low = 0 if known is None else known.seq  # place `low` exists (0: none)
    step = 1
    while (probe := await at(low + step)) is not None:
        found, low = probe, low + step
        step *= 2
    high = low + step  # place `high` does not exist
    while high - low > 1:
        middle = (low + high) // 2
        if (probe := await at(middle)) is None:
            high = middle
        else:
            found, low = probe, middle
    return found


class MongoTierStore:
    """Claims in MongoDB / FerretDB; amounts as decimal strings (exact).

    One instance per consumer process: it remembers the head of each key it has seen.
    """

    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], *, pairs_pushed_down: bool | None = None
    ) -> None:
        """``pairs_pushed_down``: whether the database answers a ``(key, record_id)`` equality
        itself (see ``_claims_of``); ``None``: ask it (``explain``) the first time."""
        self._places = db[CLAIMS]
        self._indexed = False
        self._heads: dict[str, Claim] = {}
        self._stale: set[str] = set()
        self._stored: dict[tuple[str, str], Claim] = {}  # what the last save stored
        self._pairs_pushed_down = pairs_pushed_down

    async def _ensure_index(self) -> None:
        if not self._indexed:
            await self._places.create_index(
                [("key", ASCENDING), ("record_id", ASCENDING)], unique=True
            )
            self._indexed = True

    async def load(self, wanted: Iterable[tuple[str, str]], *, records: bool = True) -> TierState:
        """See :class:`TierStore`."""
        await self._ensure_index()
        wanted = list(wanted)
        keys = sorted({key for key, _ in wanted})
        state = TierState()
        for key in keys:
            head = self._heads.get(key)
            if head is None or key in self._stale:
                head = await _latest(self._places, key, head)
                self._stale.discard(key)
                if head is not None:
                    self._heads[key] = head
            if head is not None:
                state.apply(head)
        for pair in wanted:
            if (stored := self._stored.get(pair)) is not None:
                state.apply(stored)
        if records and wanted:
            for claim in await self._claims_of(sorted(set(wanted))):
                state.apply(claim)
        return state

    async def _claims_of(self, pairs: list[tuple[str, str]]) -> list[Claim]:
        """The stored claims of these (key, record id) pairs.

        FerretDB pushes down no ``$in`` (on either backend): one query for them all reads the
        whole collection (a redelivered batch of 500 records ~31 s at 100,000 stored places
        over PostgreSQL, measured). Where the database answers an equality on both fields
        itself (over PostgreSQL from the GIN twin of the ``(key, record_id)`` index; MongoDB
        from the index), each pair is read alone, ``RECORD_LOOKUPS`` at a time. Where it does
        not (FerretDB over SQLite pushes down only ``_id``), each look-up would read the whole
        collection too, so there one query for them all reads it once. The database is asked
        (``explain``) once per store.
        """
        if self._pairs_pushed_down is None:
            key, record_id = pairs[0]
            plan = await explain_query(self._places, {"key": key, "record_id": record_id})
            self._pairs_pushed_down = plan.filter_pushed_down
        if not self._pairs_pushed_down:
            wanted = set(pairs)
            query = {
                "key": {"$in": sorted({key for key, _ in pairs})},
                "record_id": {"$in": sorted({record_id for _, record_id in pairs})},
            }
            docs = [doc async for doc in self._places.find(query)]
            return [c for c in map(_claim, docs) if (c.key, c.record_id) in wanted]
        found: list[Claim] = []

        async def look_up(key: str, record_id: str) -> None:
            doc = await self._places.find_one({"key": key, "record_id": record_id})
            if doc is not None:
                found.append(_claim(doc))

        for start in range(0, len(pairs), RECORD_LOOKUPS):
            chunk = pairs[start : start + RECORD_LOOKUPS]
            await asyncio.gather(*(look_up(key, record_id) for key, record_id in chunk))
        return found

    async def save(self, claims: list[Claim]) -> None:
        """See :class:`TierStore`. Inserted in (key, seq) order and stopping at the first
        conflict, so what was stored before it is a valid prefix of each key's chain."""
        self._stored = {}
        if not claims:
            return
        await self._ensure_index()
        ordered = sorted(claims, key=lambda c: (c.key, c.seq))
        docs = [_document(c) for c in ordered]
        try:
            await self._places.insert_many(docs, ordered=True)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if not errors or any(e.get("code") != 11000 for e in errors):
                raise
            failed = int(errors[0].get("index", 0))
            for claim in ordered[:failed]:
                self._remember(claim)
                self._stored[claim.key, claim.record_id] = claim
            self._stale |= {c.key for c in ordered[failed:]}
            # FerretDB does not say which index refused it: a taken place is there by _id
            taken = await self._places.find_one({"_id": docs[failed]["_id"]}, {"_id": 1})
            what = "is taken" if taken is not None else "was refused: its record has a claim"
            msg = f"place {docs[failed]['_id']} {what}"
            raise ClaimConflictError(msg, record_claimed=taken is None) from exc
        for claim in ordered:
            self._remember(claim)

    def _remember(self, claim: Claim) -> None:
        head = self._heads.get(claim.key)
        if head is None or claim.seq > head.seq:
            self._heads[claim.key] = claim
