"""The audit trail as kept: one record per action, never changed or removed. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing_schemas.events import AuditEntry, AuditRecorded


@dataclass(frozen=True)
class AuditRecord:
    """One recorded action: its id, when, which service recorded it, and the entry."""

    audit_id: str
    at: datetime
    source: str
    entry: AuditEntry

    def as_json(self) -> dict[str, Any]:
        """The record as ``billing audit --json`` and ``GET /v1/audit`` show it."""
        return {
            "audit_id": self.audit_id,
            "at": self.at.isoformat(),
            "source": self.source,
            **self.entry.model_dump(mode="json"),
        }


def record_of(event: AuditRecorded) -> AuditRecord:
    """The record an ``AuditRecorded`` event asks to keep (its id: the event id, so an event
    consumed twice is one record)."""
    return AuditRecord(event.event_id, event.occurred_at, event.source, event.data)
