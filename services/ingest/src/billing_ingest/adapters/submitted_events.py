"""Accepted upstream events in MongoDB: one document per event id, with its content's digest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

SUBMITTED = "ingest_submitted_events"
DUPLICATE_KEY = 11000


class MongoSubmittedEvents:
    """:class:`~billing_ingest.ports.SubmittedEvents` on MongoDB / FerretDB.

    A claim is an insert keyed by the record id: the unique ``_id`` makes the first writer win,
    whatever the number of consumers, without a transaction.
    """

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._events = db[SUBMITTED]

    async def claim(self, claims: dict[str, str]) -> dict[str, str]:
        """See the port."""
        if not claims:
            return {}
        now = datetime.now(UTC)
        taken: list[str] = []
        try:
            await self._events.insert_many(
                [{"_id": rid, "fingerprint": fp, "accepted_at": now} for rid, fp in claims.items()],
                ordered=False,
            )
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            ids = list(claims)
            taken = [ids[e["index"]] for e in errors]
        # each read back by its _id: FerretDB pushes down no ``$in``, so one query for all of
        # them would read every event ever accepted (docs/operations.md, "The database backend")
        found = await asyncio.gather(
            *(self._events.find_one({"_id": rid}, {"fingerprint": 1}) for rid in taken)
        )
        return {doc["_id"]: doc["fingerprint"] for doc in found if doc is not None}
