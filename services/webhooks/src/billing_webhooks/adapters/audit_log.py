"""The audit trail in MongoDB (``audit_log``): insert only. ``before``/``after`` are kept as JSON
text, so that any key (a tag with a dot, a ``$``) is stored as given, which FerretDB's document
keys could not always hold."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from billing_schemas.events import AuditEntry
from billing_webhooks.domain.audit import AuditRecord

AUDIT_LOG = "audit_log"
DUPLICATE_KEY = 11000
Doc = dict[str, Any]


def audit_doc(record: AuditRecord) -> Doc:
    """A record as stored."""
    entry = record.entry
    return {
        "_id": record.audit_id,
        "at": record.at,
        "source": record.source,
        "action": entry.action,
        "actor": entry.actor,
        "subject": entry.subject,
        "customer_id": entry.customer_id,
        "summary": entry.summary,
        "before": None if entry.before is None else json.dumps(entry.before, sort_keys=True),
        "after": None if entry.after is None else json.dumps(entry.after, sort_keys=True),
    }


def audit_of(doc: Doc) -> AuditRecord:
    """The record a stored document holds."""
    return AuditRecord(
        audit_id=doc["_id"],
        at=doc["at"],
        source=doc["source"],
        entry=AuditEntry(
            action=doc["action"],
            actor=doc["actor"],
            subject=doc["subject"],
            customer_id=doc.get("customer_id"),
            summary=doc.get("summary", ""),
            before=None if doc.get("before") is None else json.loads(doc["before"]),
            after=None if doc.get("after") is None else json.loads(doc["after"]),
        ),
    )


class MongoAuditLog:
    """:class:`~billing_webhooks.ports.AuditLog` over MongoDB."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._log = db[AUDIT_LOG]

    async def ensure_indexes(self) -> None:
        """Reads go by time (real MongoDB uses the index)."""
        await self._log.create_index([("at", ASCENDING)])

    async def append(self, records: Sequence[AuditRecord]) -> int:
        """See the port: inserts, a known id is skipped."""
        if not records:
            return 0
        try:
            result = await self._log.insert_many([audit_doc(r) for r in records], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return int(exc.details.get("nInserted", 0))
        return len(result.inserted_ids)

    async def read(self, *, since: datetime | None = None, limit: int = 1000) -> list[AuditRecord]:
        """See the port."""
        query: Doc = {} if since is None else {"at": {"$gte": since}}
        cursor = self._log.find(query).sort([("at", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        return [audit_of(d) async for d in cursor]
