"""The dispatcher: a background task that sends the deliveries that are due.

Every ``poll_seconds`` it runs ``service/deliver.py:dispatch_due``; when a round sent
something it goes again at once (the next events of each invoice are now heads of their
chains), so a burst drains at the receivers' pace, not the poll's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from billing_runtime.service import Runtime
from billing_webhooks.domain.deliveries import DeliveryState
from billing_webhooks.service.deliver import (
    DeliveryPolicy,
    DispatchReport,
    WebhookPorts,
    dispatch_due,
)
from billing_webhooks.settings import WebhooksSettings

log = logging.getLogger("billing.webhooks.dispatcher")

OUTCOMES = {
    DeliveryState.DELIVERED: "delivery_delivered",
    DeliveryState.FAILED: "delivery_failed",
    DeliveryState.ABANDONED: "delivery_abandoned",
}


def count(runtime: Runtime, report: DispatchReport) -> None:
    """``billing_outcomes_total{service="webhooks",outcome=...}`` for one round."""
    outcomes = runtime.metrics.outcomes
    failed_attempts = sum(1 for a in report.attempts if not a.succeeded)
    outcomes.labels("webhooks", "attempt").inc(len(report.attempts))
    outcomes.labels("webhooks", "attempt_failed").inc(failed_attempts)
    for delivery in report.finished:
        outcomes.labels("webhooks", OUTCOMES[delivery.state]).inc()
    outcomes.labels("webhooks", "delivery_abandoned").inc(report.abandoned)
    outcomes.labels("webhooks", "endpoint_disabled").inc(len(report.disabled))


def register_dispatcher(
    runtime: Runtime, settings: WebhooksSettings, ports: WebhookPorts, policy: DeliveryPolicy
) -> None:
    """Run the dispatcher while the service runs."""
    tasks: list[asyncio.Task[None]] = []

    async def loop() -> None:
        while True:
            try:
                report = await dispatch_due(ports, policy)
            except Exception:
                log.exception("dispatching webhooks failed; trying again later")
                report = DispatchReport()
            count(runtime, report)
            if not report.attempts:
                await asyncio.sleep(settings.poll_seconds)

    async def start() -> None:
        tasks.append(asyncio.create_task(loop(), name="webhooks-dispatcher"))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        tasks.clear()

    runtime.on_startup.append(start)
    runtime.on_shutdown.append(stop)
