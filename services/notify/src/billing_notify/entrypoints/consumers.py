"""Kafka entrypoints: an event in, an email out, ``NotificationSent`` published. Decode, call,
publish; one subscriber per use case of ``service/use_cases.py``, and one that keeps the verdicts
``billing reconcile`` publishes (``service/keep_verdicts.py``) for the bill report.

A batch's emails are sent concurrently, at most ``send_concurrency`` at once, those of one
partition key in order (``service/batch.py``; each email is its own SMTP exchange), reading the
catalog once per batch. A message that fails for a reason of its own (``service/failures.py``:
anything but the database or network not answering, an unexpected exception included) is
dead-lettered with the reason and the rest of the batch goes on: it is never redelivered in a loop.
The batch never waits for a failing SMTP server: a transient failure schedules a retry in the
delivery log (the re-driver, ``entrypoints/retry_loop.py``, takes it from there), and once the
server failed in a batch, the batch's emails not started yet are scheduled for retry without
trying, so a batch holds its partition for about one SMTP timeout.
"""

from __future__ import annotations

import logging
from typing import Any

from billing_notify.domain.errors import NotificationError
from billing_notify.service.batch import SmtpGate, cached_per_batch, run_by_key
from billing_notify.service.deliver import (
    DeliveryOutcome,
    MailPolicy,
    NotifyPorts,
    Result,
    notification_sent,
)
from billing_notify.service.failures import own_failure
from billing_notify.service.keep_verdicts import keep_verdicts
from billing_notify.service.use_cases import USE_CASES, UseCase
from billing_notify.settings import NotifySettings
from billing_runtime.consumer import Message
from billing_runtime.kafka import Failed
from billing_runtime.observability import correlated
from billing_runtime.service import Runtime, declare_output
from billing_runtime.tracing import handling
from billing_schemas.channels import (
    NOTIFICATION_SENT,
    NOTIFY_VERDICTS,
    PERIOD_RECONCILED,
    channel_of,
)
from billing_schemas.events import Envelope, PeriodReconciled

log = logging.getLogger("billing.notify")

OUTCOME_METRIC = {
    Result.SENT: "email_sent",
    Result.FAILED: "email_failed",
    Result.RETRY_SCHEDULED: "email_retry_scheduled",
    Result.UNCERTAIN: "email_uncertain",
}
"""``billing_outcomes_total{service="notify",outcome=...}`` per result (others not counted)."""


def count(runtime: Runtime, outcome: DeliveryOutcome) -> None:
    """Count an outcome in the service's metrics (fallback recipients counted apart)."""
    name = OUTCOME_METRIC.get(outcome.result)
    if name is not None:
        runtime.metrics.outcomes.labels("notify", name).inc()
    if outcome.result is Result.SENT and outcome.fallback_recipient:
        runtime.metrics.outcomes.labels("notify", "email_fallback_recipient").inc()


def register(
    runtime: Runtime, settings: NotifySettings, ports: NotifyPorts, policy: MailPolicy
) -> None:
    """Subscribe one consumer group per use case, and the one that keeps reconciliation
    verdicts; declare the topics notify writes."""
    target = NOTIFICATION_SENT.name(settings.topic_namespace)
    declare_output(runtime, NOTIFICATION_SENT)
    for use_case in USE_CASES:
        _subscribe(
            runtime,
            ports=ports,
            policy=policy,
            use_case=use_case,
            target=target,
            send_concurrency=settings.send_concurrency,
        )
    _keep_verdicts(runtime, ports)


def _keep_verdicts(runtime: Runtime, ports: NotifyPorts) -> None:
    """Keep ``billing reconcile``'s verdicts (no email: the bill report reads them)."""

    @runtime.consumer(
        PERIOD_RECONCILED,
        group=NOTIFY_VERDICTS,
        title="keep-reconcile-verdicts",
        description="Keeps the newest billing reconcile verdict of each period, for the "
        "operators' bill report.",
    )
    async def on_verdicts(messages: list[Message[PeriodReconciled]]) -> list[Failed]:
        kept = await keep_verdicts((m.event for m in messages), ports.reconciliations)
        runtime.metrics.outcomes.labels("notify", "reconcile_verdict_kept").inc(kept)
        return []


def _subscribe(
    runtime: Runtime,
    *,
    ports: NotifyPorts,
    policy: MailPolicy,
    use_case: UseCase[Any],
    target: str,
    send_concurrency: int,
) -> None:
    channel = channel_of(use_case.topic)

    @runtime.consumer(
        channel,
        group=channel.group("notify", use_case.group_suffix),
        title=use_case.title,
        description=use_case.description,
    )
    async def on_events(messages: list[Message[Any]]) -> list[Failed]:
        batch = cached_per_batch(ports)
        gate = SmtpGate()
        failed: list[Failed | None] = [None] * len(messages)
        sent: list[tuple[str, Envelope] | None] = [None] * len(messages)

        async def one(index: int) -> None:
            message = messages[index]
            event = message.event
            try:
                with (
                    handling(f"notify {use_case.title}", message.record),
                    correlated(event.correlation_id),
                ):
                    outcome = await use_case.run(event, batch, policy, gate.mode)
                    notification = outcome.notification
                    if notification is not None:
                        done = (use_case.key(event), notification_sent(notification, event))
            except Exception as exc:
                reason = own_failure(exc)
                if reason is None:
                    raise  # the database or the network: the batch is redelivered
                if not isinstance(exc, NotificationError):
                    log.exception("%s: dead-lettered after an unexpected error", use_case.title)
                failed[index] = message.failed(reason)
                runtime.metrics.outcomes.labels("notify", "email_failed").inc()
                return
            gate.saw(outcome)
            count(runtime, outcome)
            if outcome.result is Result.FAILED:
                failed[index] = message.failed(f"PermanentMailError: {outcome.reason}")
            if notification is not None:
                sent[index] = done

        keys = [use_case.key(message.event) for message in messages]
        await run_by_key(keys, one, send_concurrency)
        await runtime.publisher.publish(target, [s for s in sent if s is not None])
        return [f for f in failed if f is not None]
