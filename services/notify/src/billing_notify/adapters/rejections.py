"""Reads a bill's rejected rows, which ingest stores before it announces the bill processed.

The collection ``ingest_rejections`` belongs to ingest (one document per rejected row: the
``RejectedRow`` fields plus ``bill_id`` and ``seq``, the row number); notify only reads it, as
it reads the catalog's customers.
"""

from __future__ import annotations

from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase

from billing_schemas.events import RejectedRow

REJECTIONS = "ingest_rejections"
"""Owned by ingest (``billing_ingest.adapters.bill_registry.REJECTIONS``)."""


class RejectedRows(Protocol):
    """Port: the first rejected rows of a bill."""

    async def first(self, bill_id: str, limit: int) -> list[RejectedRow]:
        """Up to ``limit`` rejected rows of the bill, in row order."""
        ...


class MongoRejectedRows:
    """Rejected rows in MongoDB."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._rejections = db[REJECTIONS]

    async def first(self, bill_id: str, limit: int) -> list[RejectedRow]:
        """See :class:`RejectedRows`."""
        if limit <= 0:
            return []
        cursor = self._rejections.find({"bill_id": bill_id}).sort("seq", 1).limit(limit)
        fields = RejectedRow.model_fields
        return [
            RejectedRow.model_validate({k: v for k, v in doc.items() if k in fields})
            async for doc in cursor
        ]


class InMemoryRejectedRows:
    """Fake of the port for unit tests."""

    def __init__(self, rows: dict[str, list[RejectedRow]] | None = None) -> None:
        self.rows = dict(rows or {})

    async def first(self, bill_id: str, limit: int) -> list[RejectedRow]:
        """See :class:`RejectedRows`."""
        return self.rows.get(bill_id, [])[: max(limit, 0)]
