"""Deliveries: one message to one endpoint, its attempts, retries and order. Pure, no I/O.

A delivery is ``pending`` until an attempt is answered with a 2xx status (``delivered``), its
attempts are exhausted (``failed``), or its endpoint is disabled (``abandoned``). A failed
attempt (no answer, a timeout, any status but 2xx) is retried after a backoff that doubles from
``RetryPolicy.base`` up to ``RetryPolicy.maximum``.

Order per invoice: deliveries to one endpoint that share an ``order_key`` (one invoice, or one
bill) form a chain sorted by when their events occurred; only the head of a chain is ever sent,
so the next event of an invoice leaves only after the previous one was delivered or given up.
A new delivery waits ``order_window`` before its first attempt, so that an earlier event of the
same invoice that arrives a moment later from another topic still takes its place first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from billing_webhooks.domain.endpoints import Endpoint
from billing_webhooks.domain.messages import RANK, EventKind, WebhookMessage

MAX_ERROR_LENGTH = 500


class DeliveryState(StrEnum):
    """Where a delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a delivery is retried."""

    base: timedelta
    maximum: timedelta
    max_attempts: int
    order_window: timedelta = timedelta(0)

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt: base, doubled each time, capped."""
        # in float seconds: base * 2**n overflows timedelta after a few dozen attempts
        seconds = self.base.total_seconds() * 2.0 ** min(max(attempts - 1, 0), 64)
        return min(timedelta(seconds=min(seconds, self.maximum.total_seconds())), self.maximum)


@dataclass(frozen=True)
class Attempt:
    """One HTTP POST of a delivery and what came back."""

    delivery_id: str
    endpoint_id: str
    message_id: str
    number: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def succeeded(self) -> bool:
        """A 2xx status is the only success (a redirect is not followed: it fails)."""
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Delivery:
    """One message for one endpoint."""

    delivery_id: str
    endpoint_id: str
    customer_id: str | None
    message_id: str
    kind: EventKind
    order_key: str
    occurred_at: datetime
    body: str
    created_at: datetime
    next_attempt_at: datetime
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    last_duration_ms: float | None = None
    finished_at: datetime | None = None

    @property
    def chain(self) -> tuple[str, str]:
        """Deliveries of one chain go out one after the other, in ``sort_key`` order."""
        return (self.endpoint_id, self.order_key)

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        """When the event occurred, then the invoice's life, then the id."""
        return (self.occurred_at, RANK[self.kind], self.message_id)


def delivery_id(endpoint_id: str, message_id: str) -> str:
    """Deterministic: the same event for the same endpoint is one delivery, however often the
    event is consumed."""
    return f"{endpoint_id}:{message_id}"


def deliveries_for(
    message: WebhookMessage,
    endpoints: Iterable[Endpoint],
    now: datetime,
    policy: RetryPolicy,
) -> list[Delivery]:
    """A pending delivery of the message for each endpoint that receives it."""
    return [
        Delivery(
            delivery_id=delivery_id(endpoint.endpoint_id, message.message_id),
            endpoint_id=endpoint.endpoint_id,
            customer_id=endpoint.customer_id,
            message_id=message.message_id,
            kind=message.kind,
            order_key=message.order_key,
            occurred_at=message.occurred_at,
            body=message.body,
            created_at=now,
            next_attempt_at=now + policy.order_window,
        )
        for endpoint in endpoints
        if endpoint.receives(message)
    ]


def heads(pending: Iterable[Delivery]) -> list[Delivery]:
    """The first pending delivery of each chain: the only ones that may be sent now."""
    first: dict[tuple[str, str], Delivery] = {}
    for delivery in pending:
        if delivery.state is not DeliveryState.PENDING:
            continue
        current = first.get(delivery.chain)
        if current is None or delivery.sort_key < current.sort_key:
            first[delivery.chain] = delivery
    return sorted(first.values(), key=lambda d: (d.next_attempt_at, d.sort_key))


def due(pending: Iterable[Delivery], now: datetime) -> list[Delivery]:
    """Heads of chains whose next attempt is due."""
    return [d for d in heads(pending) if d.next_attempt_at <= now]


def after_attempt(delivery: Delivery, attempt: Attempt, policy: RetryPolicy) -> Delivery:
    """The delivery once ``attempt`` is known: delivered, retried later, or failed for good."""
    attempts = delivery.attempts + 1
    updated = replace(
        delivery,
        attempts=attempts,
        last_status=attempt.status_code,
        last_error=None if attempt.error is None else attempt.error[:MAX_ERROR_LENGTH],
        last_duration_ms=attempt.duration_ms,
    )
    if attempt.succeeded:
        return replace(updated, state=DeliveryState.DELIVERED, finished_at=attempt.at)
    if attempts >= policy.max_attempts:
        return replace(updated, state=DeliveryState.FAILED, finished_at=attempt.at)
    return replace(updated, next_attempt_at=attempt.at + policy.backoff(attempts))


def abandon(delivery: Delivery, now: datetime, reason: str) -> Delivery:
    """The endpoint is disabled or gone: the delivery will not be tried again."""
    return replace(
        delivery,
        state=DeliveryState.ABANDONED,
        finished_at=now,
        last_error=reason[:MAX_ERROR_LENGTH],
    )
