"""Where the period state of cumulative rules lives: one claim document per (key, record).

Only single-document inserts (FerretDB has no transactions). A claim is written once under
``key#record_id``; a unique index on ``(key, seq)`` lets only one writer take the next place of
a key, so two consumers rating the same customer cannot both place records at the same point of
its running total: the second insert fails and its batch is rated again (docs/rating.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from billing_rating.domain.tiers import Claim, TierState

CLAIMS = "rating_tier_claims"


class ClaimConflictError(RuntimeError):
    """Another writer took a place in a running total first: rate the batch again."""


class TierStore(Protocol):
    """Port: load the state a batch needs; store the claims it made."""

    async def load(self, wanted: Iterable[tuple[str, str]]) -> TierState:
        """The latest claim of each key and the existing claims of these (key, record id)."""
        ...

    async def save(self, claims: list[Claim]) -> None:
        """Store new claims; :class:`ClaimConflictError` if a place was taken meanwhile."""
        ...


def claim_id(key: str, record_id: str) -> str:
    """The document id of a record's claim in a key."""
    return f"{key}#{record_id}"


def _claim(doc: dict[str, Any]) -> Claim:
    return Claim(
        doc["key"], doc["record_id"], doc["seq"], Decimal(doc["start"]), Decimal(doc["end"])
    )


class MongoTierStore:
    """Claims in MongoDB / FerretDB; amounts as decimal strings (exact)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._claims = db[CLAIMS]
        self._indexed = False

    async def _ensure_index(self) -> None:
        if not self._indexed:
            await self._claims.create_index([("key", ASCENDING), ("seq", ASCENDING)], unique=True)
            self._indexed = True

    async def load(self, wanted: Iterable[tuple[str, str]]) -> TierState:
        """See :class:`TierStore`."""
        await self._ensure_index()
        wanted = list(wanted)
        state = TierState()
        ids = sorted({claim_id(key, rid) for key, rid in wanted})
        if not ids:
            return state
        async for doc in self._claims.find({"_id": {"$in": ids}}):
            state.apply(_claim(doc))
        for key in sorted({key for key, _ in wanted}):
            async for doc in self._claims.find({"key": key}).sort("seq", DESCENDING).limit(1):
                state.apply(_claim(doc))
        return state

    async def save(self, claims: list[Claim]) -> None:
        """See :class:`TierStore`. Inserted in (key, seq) order and stopping at the first
        conflict, so what was stored before it is a valid prefix of each key's chain."""
        if not claims:
            return
        await self._ensure_index()
        docs = [
            {
                "_id": claim_id(c.key, c.record_id),
                "key": c.key,
                "record_id": c.record_id,
                "seq": c.seq,
                "start": format(c.start, "f"),
                "end": format(c.end, "f"),
            }
            for c in sorted(claims, key=lambda c: (c.key, c.seq))
        ]
        try:
            await self._claims.insert_many(docs, ordered=True)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if errors and all(e.get("code") == 11000 for e in errors):
                raise ClaimConflictError(str(errors[0].get("errmsg", "duplicate claim"))) from exc
            raise


class InMemoryTierStore:
    """Fake of the port for unit tests, with the same conflict rule."""

    def __init__(self) -> None:
        self.claims: dict[str, Claim] = {}

    async def load(self, wanted: Iterable[tuple[str, str]]) -> TierState:
        """See :class:`TierStore`."""
        wanted = list(wanted)
        keys = {key for key, _ in wanted}
        state = TierState()
        for key, rid in wanted:
            if (found := self.claims.get(claim_id(key, rid))) is not None:
                state.apply(found)
        for claim in self.claims.values():
            if claim.key in keys:
                state.apply(claim)
        return state

    async def save(self, claims: list[Claim]) -> None:
        """See :class:`TierStore`."""
        taken = {(c.key, c.seq) for c in self.claims.values()}
        for claim in sorted(claims, key=lambda c: (c.key, c.seq)):
            cid = claim_id(claim.key, claim.record_id)
            if cid in self.claims or (claim.key, claim.seq) in taken:
                msg = f"place {claim.seq} of {claim.key} is taken"
                raise ClaimConflictError(msg)
            self.claims[cid] = claim
            taken.add((claim.key, claim.seq))
