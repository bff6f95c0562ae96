"""The audit trail's port: every action that changes money or access is published once, as an
``AuditRecorded`` event on ``billing.audit.recorded.v1``; the webhooks service stores it,
append-only (``billing audit``, ``GET /v1/audit``).

Services record from their use cases' entrypoints (the CLI command, the API route) once the
action succeeded, through :class:`AuditTrail`; the event id is the action's own stable id where
it has one (a payment id, a contact and its new state), so a retried action is recorded once.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from billing_runtime.kafka import Publisher, ensure_topics
from billing_schemas.channels import AUDIT_RECORDED
from billing_schemas.events import AuditEntry, AuditRecorded

log = logging.getLogger("billing.audit")


class AuditTrail(Protocol):
    """Where a service records what it changed."""

    async def record(self, entry: AuditEntry, *, audit_id: str | None = None) -> None:
        """Record one action; ``audit_id``: the action's stable id (default: from its content
        and the minute it happened)."""
        ...


def cli_actor() -> str:
    """Who runs a command: ``cli:<os user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for the uid (a bare container)
        return "cli:unknown"


def default_audit_id(entry: AuditEntry, at: datetime) -> str:
    """A content id: the same action by the same actor in the same minute is one entry."""
    text = json.dumps(
        [entry.model_dump(mode="json"), at.strftime("%Y-%m-%dT%H:%M")], sort_keys=True
    )
    return f"audit:{hashlib.sha256(text.encode()).hexdigest()[:24]}"


class KafkaAuditTrail:
    """:class:`AuditTrail` over Kafka, keyed by customer (else subject)."""

    def __init__(
        self, publisher: Publisher, namespace: str, source: str, bootstrap_servers: str
    ) -> None:
        self._publisher = publisher
        self._topic = AUDIT_RECORDED.name(namespace)
        self._source = source
        self._bootstrap_servers = bootstrap_servers
        self._topic_ready = False

    async def record(self, entry: AuditEntry, *, audit_id: str | None = None) -> None:
        """Publish and wait for the broker's acknowledgement (the topic is created first if a
        command runs before any service made it)."""
        if not self._topic_ready:
            await ensure_topics(self._bootstrap_servers, [self._topic])
            self._topic_ready = True
        at = datetime.now(UTC)
        event = AuditRecorded.create(
            entry,
            source=self._source,
            correlation_id=audit_id or entry.subject,
            event_id=audit_id or default_audit_id(entry, at),
            occurred_at=at,
        )
        await self._publisher.publish(self._topic, AUDIT_RECORDED.keyed([event]))
        log.info("audit: %s %s by %s", entry.action, entry.subject, entry.actor)


class InMemoryAuditTrail:
    """Fake :class:`AuditTrail` for tests: keeps the entries with their ids."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, AuditEntry]] = []

    async def record(self, entry: AuditEntry, *, audit_id: str | None = None) -> None:
        self.entries.append((audit_id or default_audit_id(entry, datetime.now(UTC)), entry))


def as_json(value: Any) -> dict[str, Any]:
    """A pydantic model or dataclass-like mapping as plain JSON (decimals as strings)."""
    dumped = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
    loaded: dict[str, Any] = json.loads(json.dumps(dumped, default=str))
    return loaded
