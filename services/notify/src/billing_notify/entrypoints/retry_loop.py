"""The re-driver: a background task that sends the emails whose retry is due.

Every ``retry_poll_seconds`` it takes due retry records one by one (``service/retries.py``),
publishes ``NotificationSent`` for those now sent, and dead-letters the event of those that
failed for good (given up after the last retry, or refused): the event's JSON as the retry
record kept it, to ``<topic>.dlq`` with the reason in ``x-error``, so ``billing dlq replay``
works on it as on any dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from billing_notify.entrypoints.consumers import count
from billing_notify.service.deliver import MailPolicy, NotifyPorts, Result, notification_sent
from billing_notify.service.retries import Redriven, redrive_due
from billing_notify.settings import NotifySettings
from billing_runtime.service import Runtime
from billing_schemas.topics import DEAD_LETTER_SUFFIX, Topic, topic_name

log = logging.getLogger("billing.notify.retries")


async def _settle(runtime: Runtime, settings: NotifySettings, redriven: Redriven) -> None:
    outcome = redriven.outcome
    count(runtime, outcome)
    ns = settings.topic_namespace
    notification = outcome.notification
    if outcome.result is Result.SENT and notification is not None and redriven.use_case:
        event = notification_sent(notification, redriven.event)
        key = redriven.use_case.key(redriven.event)
        await runtime.publisher.publish(topic_name(Topic.NOTIFICATION_SENT, ns), [(key, event)])
    taken = redriven.taken
    if outcome.result is Result.FAILED and taken.source_topic and taken.source_event:
        original = f"{ns}{taken.source_topic}"
        await runtime.broker.publish(
            taken.source_event.encode(),
            topic=f"{original}{DEAD_LETTER_SUFFIX}",
            key=(taken.source_key or "").encode() or None,
            headers={
                "x-error": f"PermanentMailError: {outcome.reason}"[:4000],
                "x-original-topic": original,
                "x-retry-of": taken.message_id,
                "x-failed-by": "notify",
            },
        )
        runtime.metrics.dead_lettered.labels("notify", original).inc()


async def redrive_once(
    runtime: Runtime, settings: NotifySettings, ports: NotifyPorts, policy: MailPolicy
) -> int:
    """Re-drive every retry that is due now; return how many were taken."""
    lease = timedelta(seconds=settings.retry_lease_seconds)
    taken = 0
    while (redriven := await redrive_due(ports, policy, lease)) is not None:
        taken += 1
        await _settle(runtime, settings, redriven)
    return taken


def register_retry_loop(
    runtime: Runtime, settings: NotifySettings, ports: NotifyPorts, policy: MailPolicy
) -> None:
    """Run the re-driver while the service runs."""
    tasks: list[asyncio.Task[None]] = []

    async def loop() -> None:
        while True:
            # first sleep, then work: the broker is connected after the start-up hooks
            await asyncio.sleep(settings.retry_poll_seconds)
            try:
                await redrive_once(runtime, settings, ports, policy)
            except Exception:
                log.exception("re-driving retries failed; trying again later")

    async def start() -> None:
        tasks.append(asyncio.create_task(loop(), name="notify-retries"))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        tasks.clear()

    runtime.on_startup.append(start)
    runtime.on_shutdown.append(stop)
