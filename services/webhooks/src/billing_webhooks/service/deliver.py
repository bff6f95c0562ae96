"""Use cases of delivery: queue the events consumed, send what is due.

``enqueue`` runs in the Kafka consumer: it only writes the queue, never waits for an endpoint,
so a slow receiver never holds a partition. ``dispatch_due`` runs in the dispatcher loop: it
sends the head of every chain that is due (``domain/deliveries.py``), several endpoints at once,
and records each attempt; an endpoint failing for ``disable_after`` is disabled, its queue
abandoned, and the operators told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from billing_webhooks.domain import endpoints as rules
from billing_webhooks.domain.deliveries import (
    Attempt,
    Delivery,
    DeliveryState,
    RetryPolicy,
    abandon,
    after_attempt,
    deliveries_for,
    due,
)
from billing_webhooks.domain.endpoints import Endpoint
from billing_webhooks.domain.messages import WebhookMessage
from billing_webhooks.ports import (
    DeliveryStore,
    EndpointStore,
    OperatorAlerts,
    WebhookSender,
)
from billing_webhooks.service.endpoints import abandon_queued

log = logging.getLogger("billing.webhooks")


@dataclass(frozen=True)
class WebhookPorts:
    """What the delivery use cases need."""

    endpoints: EndpointStore
    deliveries: DeliveryStore
    sender: WebhookSender
    alerts: OperatorAlerts


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retries, disabling, concurrency and leases."""

    retry: RetryPolicy
    disable_after: timedelta
    lease: timedelta = timedelta(seconds=60)
    concurrency: int = 16


async def enqueue(
    ports: WebhookPorts,
    messages: Sequence[WebhookMessage],
    policy: DeliveryPolicy,
    now: datetime | None = None,
) -> list[Delivery]:
    """Queue a delivery of each message for each endpoint that receives it; return the new
    ones (a message consumed again adds nothing)."""
    if not messages:
        return []
    at = now or datetime.now(UTC)
    endpoints = [e for e in await ports.endpoints.all() if e.enabled]
    wanted: list[Delivery] = []
    for message in messages:
        wanted += deliveries_for(message, endpoints, at, policy.retry)
    return await ports.deliveries.enqueue(wanted)


@dataclass
class DispatchReport:
    """What one dispatch round did."""

    attempts: list[Attempt] = field(default_factory=list)
    finished: list[Delivery] = field(default_factory=list)
    disabled: list[Endpoint] = field(default_factory=list)
    abandoned: int = 0


async def dispatch_due(
    ports: WebhookPorts, policy: DeliveryPolicy, now: datetime | None = None
) -> DispatchReport:
    """Send every due head of chain once (see the module docstring); return what happened."""
    at = now or datetime.now(UTC)
    report = DispatchReport()
    endpoints = {e.endpoint_id: e for e in await ports.endpoints.all()}
    pending = await ports.deliveries.pending()
    # a queued delivery whose endpoint is disabled or gone will never be sent
    for delivery in pending:
        endpoint = endpoints.get(delivery.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            reason = "endpoint removed" if endpoint is None else "endpoint disabled"
            await ports.deliveries.record(abandon(delivery, at, reason), None)
            report.abandoned += 1
    live = [d for d in pending if (e := endpoints.get(d.endpoint_id)) is not None and e.enabled]
    taken = [d for d in due(live, at) if await ports.deliveries.claim(d, at, at + policy.lease)]
    semaphore = asyncio.Semaphore(policy.concurrency)

    async def one(delivery: Delivery) -> tuple[Delivery, Attempt]:
        async with semaphore:
            sent_at = at if now is not None else datetime.now(UTC)  # a test's clock, or now
            response = await ports.sender.send(endpoints[delivery.endpoint_id], delivery, sent_at)
            attempt = Attempt(
                delivery_id=delivery.delivery_id,
                endpoint_id=delivery.endpoint_id,
                message_id=delivery.message_id,
                number=delivery.attempts + 1,
                at=sent_at,
                status_code=response.status_code,
                error=response.error,
                duration_ms=response.duration_ms,
            )
            updated = after_attempt(delivery, attempt, policy.retry)
            await ports.deliveries.record(updated, attempt)
            return updated, attempt

    results = await asyncio.gather(*(one(d) for d in taken))
    for updated, attempt in results:
        report.attempts.append(attempt)
        if updated.state is not DeliveryState.PENDING:
            report.finished.append(updated)
        if updated.state is DeliveryState.FAILED:
            log.warning(
                "webhook %s to %s failed for good after %d attempts: %s",
                updated.message_id,
                updated.endpoint_id,
                updated.attempts,
                updated.last_error or updated.last_status,
            )
    await _follow_health(ports, policy, endpoints, results, report)
    return report


async def _follow_health(
    ports: WebhookPorts,
    policy: DeliveryPolicy,
    endpoints: dict[str, Endpoint],
    results: Sequence[tuple[Delivery, Attempt]],
    report: DispatchReport,
) -> None:
    """Update each endpoint's run of failures; disable those failing for too long."""
    by_endpoint: dict[str, list[Attempt]] = {}
    for _, attempt in results:
        by_endpoint.setdefault(attempt.endpoint_id, []).append(attempt)
    for endpoint_id, attempts in by_endpoint.items():
        endpoint = endpoints[endpoint_id]
        updated = endpoint
        for attempt in sorted(attempts, key=lambda a: a.at):
            if attempt.succeeded:
                updated = rules.after_success(updated)
            else:
                updated = rules.after_failure(updated, attempt.at, policy.disable_after)
        if updated == endpoint:
            continue
        # the stored version may have changed meanwhile (an operator disabled it): re-read
        current = await ports.endpoints.get(endpoint_id)
        if current is None or current.enabled != endpoint.enabled:
            continue
        await ports.endpoints.save(updated)
        if endpoint.enabled and not updated.enabled:
            log.warning("webhook endpoint %s disabled: %s", endpoint_id, updated.disabled_reason)
            report.disabled.append(updated)
            report.abandoned += await abandon_queued(
                ports.deliveries, updated, updated.disabled_at or datetime.now(UTC)
            )
            await ports.alerts.endpoint_disabled(updated)
