"""The ports the webhook use cases take: endpoints, the delivery queue and log, the HTTP sender,
the operators' alerts and the audit log. Each has an in-memory fake (``adapters/memory.py``) and
a real adapter, proven by the same contract tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from billing_webhooks.domain.audit import AuditRecord
from billing_webhooks.domain.deliveries import Attempt, Delivery
from billing_webhooks.domain.endpoints import Endpoint


class EndpointStore(Protocol):
    """Registered endpoints (a small collection: read whole)."""

    async def add(self, endpoint: Endpoint) -> None:
        """Store a new endpoint."""
        ...

    async def get(self, endpoint_id: str) -> Endpoint | None:
        """One endpoint, or None."""
        ...

    async def all(self, customer_id: str | None = None) -> list[Endpoint]:
        """Every endpoint (only a customer's when ``customer_id``), oldest first."""
        ...

    async def save(self, endpoint: Endpoint) -> None:
        """Replace a stored endpoint with this version."""
        ...


class DeliveryStore(Protocol):
    """The queue of pending deliveries (small: only what is not finished) and the log of every
    delivery and attempt (append-mostly, read by operators, never on the sending path)."""

    async def enqueue(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Queue the deliveries not seen before and return them; a delivery id seen before
        adds nothing (a finished one is never queued again, a pending one stays queued once)."""
        ...

    async def pending(self) -> list[Delivery]:
        """Every queued delivery."""
        ...

    async def claim(self, delivery: Delivery, now: datetime, until: datetime) -> bool:
        """Take a queued delivery for sending until ``until``, unless another process holds it
        (its lease has not expired): True when taken."""
        ...

    async def record(self, delivery: Delivery, attempt: Attempt | None) -> None:
        """Log the attempt (if any) and the delivery's new state; a finished delivery leaves
        the queue."""
        ...

    async def deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        customer_id: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """The log, newest first."""
        ...

    async def get(self, delivery_id: str) -> Delivery | None:
        """One delivery of the log, or None."""
        ...

    async def attempts(self, delivery_id: str) -> list[Attempt]:
        """A delivery's attempts, oldest first."""
        ...


@dataclass(frozen=True)
class Response:
    """What an endpoint answered (or why nothing was)."""

    status_code: int | None
    error: str | None
    duration_ms: float

    @classmethod
    def answered(cls, status_code: int, duration_ms: float) -> Response:
        """An answer: a 2xx status is no error; any other (a redirect too: it is not
        followed) is the error ``HTTP <status>``."""
        error = None if 200 <= status_code < 300 else f"HTTP {status_code}"
        return cls(status_code, error, duration_ms)


class WebhookSender(Protocol):
    """Signs and POSTs one delivery."""

    async def send(self, endpoint: Endpoint, delivery: Delivery, at: datetime) -> Response:
        """POST the delivery's body to the endpoint, signed with its secret at ``at``."""
        ...


class OperatorAlerts(Protocol):
    """Tells operators what needs them."""

    async def endpoint_disabled(self, endpoint: Endpoint) -> None:
        """An endpoint was disabled after failing too long."""
        ...


class AuditLog(Protocol):
    """Append-only storage of audit records: nothing here changes or removes one."""

    async def append(self, records: Sequence[AuditRecord]) -> int:
        """Keep the records not kept before (by id); return how many were new."""
        ...

    async def read(self, *, since: datetime | None = None, limit: int = 1000) -> list[AuditRecord]:
        """Records from ``since`` on (all without), oldest first, at most ``limit``."""
        ...
