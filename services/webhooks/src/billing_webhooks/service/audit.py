"""Use cases of the audit trail: keep what the services record; read it back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from billing_runtime.access import Scope, require_operator
from billing_webhooks.domain.audit import AuditRecord
from billing_webhooks.ports import AuditLog

MAX_READ = 10_000


async def keep(log: AuditLog, records: Sequence[AuditRecord]) -> int:
    """Store what was consumed (a record consumed again is not stored twice)."""
    return await log.append(records) if records else 0


async def audit_trail(
    log: AuditLog, scope: Scope, *, since: datetime | None = None, limit: int = 1000
) -> list[AuditRecord]:
    """The trail, for operators only."""
    require_operator(scope, "reading the audit trail")
    return await log.read(since=since, limit=min(limit, MAX_READ))
