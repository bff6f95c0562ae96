"""Use cases of the audit trail: keep what the services record; read it back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from billing_runtime.access import Scope, require_operator
from billing_webhooks.domain.audit import AuditRecord

MAX_READ = 10_000


class AuditLog(Protocol):
    """Append-only storage of audit records: nothing here changes or removes one."""

    async def append(self, records: Sequence[AuditRecord]) -> int:
        """Keep the records not kept before (by id); return how many were new."""
        ...

    async def read(self, *, since: datetime | None = None, limit: int = 1000) -> list[AuditRecord]:
        """Records from ``since`` on (all without), oldest first, at most ``limit``."""
        ...


async def keep(log: AuditLog, records: Sequence[AuditRecord]) -> int:
    """Store what was consumed (a record consumed again is not stored twice)."""
    return await log.append(records) if records else 0


async def audit_trail(
    log: AuditLog, scope: Scope, *, since: datetime | None = None, limit: int = 1000
) -> list[AuditRecord]:
    """The trail, for operators only."""
    require_operator(scope, "reading the audit trail")
    return await log.read(since=since, limit=min(limit, MAX_READ))
