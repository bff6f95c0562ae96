"""Use case core: hand one email to the SMTP server at most once per recipient.

Every email goes through :func:`deliver`, whatever its kind. The delivery log (keyed by the
email's deterministic Message-ID) is written before each step:

1. settled before (``sent`` / ``uncertain``): nothing is sent; a ``sent`` record's notification
   is returned so that a ``NotificationSent`` lost in a crash is published again;
2. ``sending`` found: a crash happened after the message data went out and before the reply was
   recorded. SMTP cannot tell whether the server took it, so the record becomes ``uncertain``
   and nothing is sent again (no recipient gets two copies; an operator sees it in
   ``billing mail log``);
3. ``retrying`` found by the consumer: a retry is scheduled, the re-driver owns it: skipped;
4. otherwise the attempt is claimed (``pending``), the email built and sent to the recipients
   not served before; ``sending`` is recorded right before the message data.

Transient failures do not hold the partition: the record becomes ``retrying`` at a time the
:class:`~billing_notify.domain.delivery.RetryPolicy` chooses and the consumer moves on; the
re-driver (``service/retries.py``) tries again when it is due and gives up (failed, dead
letter) after the policy's last retry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from billing_notify.adapters.delivery_log import Clock, utc_now
from billing_notify.adapters.memory import InMemoryReconciliations
from billing_notify.domain.delivery import (
    Delivery,
    DeliveryIntent,
    DeliveryStatus,
    RetryPolicy,
)
from billing_notify.domain.messages import OutgoingEmail
from billing_notify.domain.recipients import EntitySender, Mailbox
from billing_notify.ports import (
    CustomerDirectory,
    DeliveryLog,
    InvoicePdfs,
    Mailer,
    PermanentMailError,
    Reconciliations,
    TransientMailError,
    UncertainMailError,
)
from billing_schemas.events import (
    REJECTED_ROWS_CARRIED,
    Envelope,
    Notification,
    NotificationSent,
)

SOURCE = "billing-notify"

log = logging.getLogger("billing.notify")


@dataclass(frozen=True)
class NotifyPorts:
    """What the use cases talk to."""

    customers: CustomerDirectory
    pdfs: InvoicePdfs
    deliveries: DeliveryLog
    mailer: Mailer
    clock: Clock = utc_now
    reconciliations: Reconciliations = field(default_factory=InMemoryReconciliations)


@dataclass(frozen=True)
class MailPolicy:
    """How notify writes: from whom, to which operators, what is worth an email, retries.

    ``sender`` writes the operators' reports and is every email's envelope sender (where
    bounces go); customer emails are from their invoicing entity, as ``entity_sender`` says.
    """

    sender: Mailbox
    entity_sender: EntitySender = EntitySender.FROM
    send_zero_amount_invoices: bool = False
    operators: tuple[Mailbox, ...] = ()
    overdue_reminder_days: tuple[int, ...] = (7, 14, 30)
    rejected_rows_listed: int = REJECTED_ROWS_CARRIED
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class Mode(StrEnum):
    """How :func:`deliver` treats an email that needs sending."""

    SEND = "send"
    """Try now (the consumer, first time)."""
    DEFER = "defer"
    """Do not talk to SMTP: schedule a retry (the SMTP server failed earlier in this batch)."""
    REDRIVE = "redrive"
    """Try now, a scheduled retry (the re-driver)."""


class Result(StrEnum):
    """What became of one email."""

    SENT = "sent"
    ALREADY_SENT = "already_sent"
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Source:
    """The event that asked for an email: what a scheduled retry re-drives (and dead-letters)."""

    topic: str
    key: str
    event_json: str


@dataclass(frozen=True)
class DeliveryOutcome:
    """What :func:`deliver` did, and the record it left."""

    result: Result
    delivery: Delivery | None = None
    reason: str = ""
    server_unavailable: bool = False
    """The SMTP server as a whole failed (not one recipient): later emails of the batch wait."""

    @property
    def notification(self) -> Notification | None:
        """The ``NotificationSent`` payload if the email is sent (now or before)."""
        if self.delivery is not None and self.delivery.sent:
            return self.delivery.notification()
        return None

    @property
    def fallback_recipient(self) -> bool:
        """Whether the email went to a fallback recipient (no Billing contact on file)."""
        return self.delivery is not None and self.delivery.fallback_recipient


def skipped(reason: str) -> DeliveryOutcome:
    """Nothing to send (and nothing logged): ``reason`` says why."""
    log.info("no email: %s", reason)
    return DeliveryOutcome(Result.SKIPPED, reason=reason)


async def deliver(
    message_id: str,
    build: Callable[[], Awaitable[OutgoingEmail]],
    source: Source,
    ports: NotifyPorts,
    policy: MailPolicy,
    *,
    mode: Mode = Mode.SEND,
) -> DeliveryOutcome:
    """Send the email ``build`` makes, once; see the module docstring for the steps.

    ``build`` runs only when the email must go out (a sent email is not composed again). It may
    raise :class:`~billing_notify.domain.errors.NotificationError` (permanent: the event is
    dead-lettered by the caller); a refused email is logged ``failed`` and returned as
    :attr:`Result.FAILED`.
    """
    deliveries = ports.deliveries
    previous = await deliveries.get(message_id)
    if previous is not None:
        settled = await _settled(previous, deliveries, mode)
        if settled is not None:
            return settled
    email = await build()
    if email.message_id != message_id:
        msg = f"built email has Message-ID {email.message_id}, expected {message_id}"
        raise ValueError(msg)
    intent = DeliveryIntent(
        message_id=message_id,
        kind=email.kind.value,
        invoice_id=email.invoice_id,
        customer_id=email.customer_id,
        recipients=tuple(email.recipients.addresses),
        fallback_recipient=email.recipients.fallback,
        invoice_number=email.invoice_number,
        source_topic=source.topic,
        source_event=source.event_json,
        source_key=source.key,
    )
    if email.recipients.fallback:
        log.warning(
            "%s: no Billing contact on file for customer %s: writing to %s instead",
            message_id,
            email.customer_id,
            ", ".join(email.recipients.addresses),
        )
    if mode is Mode.DEFER:
        retries = 0 if previous is None else previous.retries
        at = ports.clock() + policy.retry.delay(retries + 1)
        record = await deliveries.defer(intent, at, "not tried: SMTP failed earlier in the batch")
        return DeliveryOutcome(Result.RETRY_SCHEDULED, record, "deferred")

    record = await deliveries.claim(
        intent, restart=previous is not None and previous.status is DeliveryStatus.FAILED
    )
    if record.status is not DeliveryStatus.PENDING:  # another consumer got there first
        return await _settled(record, deliveries, Mode.SEND) or skipped("claimed elsewhere")
    return await _attempt(email, record, ports, policy)


async def _settled(record: Delivery, deliveries: DeliveryLog, mode: Mode) -> DeliveryOutcome | None:
    """The outcome if the record settles the email without a new attempt, else None."""
    status = record.status
    if status is DeliveryStatus.SENT:
        log.info("%s was sent before: not again", record.message_id)
        return DeliveryOutcome(Result.ALREADY_SENT, record)
    if status is DeliveryStatus.UNCERTAIN:
        return DeliveryOutcome(Result.SKIPPED, record, "uncertain: left for an operator")
    if status is DeliveryStatus.SENDING:
        note = (
            "interrupted after the message data was handed to the SMTP server: it may have "
            "been delivered, so it is not sent again"
        )
        log.warning("%s: %s", record.message_id, note)
        return DeliveryOutcome(
            Result.UNCERTAIN, await deliveries.mark_uncertain(record.message_id, note), note
        )
    if status is DeliveryStatus.RETRYING and mode is not Mode.REDRIVE:
        return DeliveryOutcome(Result.SKIPPED, record, "a retry is scheduled")
    return None


async def _attempt(
    email: OutgoingEmail, record: Delivery, ports: NotifyPorts, policy: MailPolicy
) -> DeliveryOutcome:
    deliveries = ports.deliveries
    message_id = record.message_id
    remaining = record.undelivered
    if not remaining:  # every current recipient was served by earlier attempts
        done = await deliveries.mark_sent(message_id, record.smtp_response or "", ())
        return DeliveryOutcome(Result.SENT, done)

    async def before_data() -> None:
        await deliveries.mark_sending(message_id)

    try:
        report = await ports.mailer.send(
            email.message,
            sender=policy.sender.address,
            recipients=remaining,
            before_data=before_data,
        )
    except TransientMailError as exc:
        outcome = await _retry_or_give_up(record, str(exc), (), ports, policy)
        return replace(outcome, server_unavailable=True)
    except UncertainMailError as exc:
        note = f"{exc}: it may have been delivered, so it is not sent again"
        log.warning("%s: %s", message_id, note)
        return DeliveryOutcome(
            Result.UNCERTAIN, await deliveries.mark_uncertain(message_id, note), note
        )
    except PermanentMailError as exc:
        failed = await deliveries.mark_failed(message_id, str(exc))
        return DeliveryOutcome(Result.FAILED, failed, str(exc))

    refused = "; ".join(f"{a}: {r}" for a, r in sorted(report.refused.items()))
    later = report.refused_for_now()
    if later:
        reason = f"refused for now: {refused}"
        return await _retry_or_give_up(record, reason, report.accepted, ports, policy)
    if not report.accepted and not record.delivered_to:
        reason = f"all recipients refused: {refused}"
        failed = await deliveries.mark_failed(message_id, reason)
        return DeliveryOutcome(Result.FAILED, failed, reason)
    response = report.response + (f" (refused for good: {refused})" if refused else "")
    sent = await deliveries.mark_sent(message_id, response, report.accepted)
    log.info(
        "sent %s to %s (attempt %d): %s",
        message_id,
        ", ".join(report.accepted),
        sent.attempts,
        response,
    )
    return DeliveryOutcome(Result.SENT, sent)


async def _retry_or_give_up(
    record: Delivery,
    reason: str,
    delivered: tuple[str, ...],
    ports: NotifyPorts,
    policy: MailPolicy,
) -> DeliveryOutcome:
    deliveries = ports.deliveries
    if record.retries >= policy.retry.max_retries:
        why = f"gave up after {record.retries} retries: {reason}"
        failed = await deliveries.mark_failed(record.message_id, why, delivered)
        return DeliveryOutcome(Result.FAILED, failed, why)
    at: datetime = ports.clock() + policy.retry.delay(record.retries + 1)
    log.warning("%s: %s; retry at %s", record.message_id, reason, at.isoformat())
    scheduled = await deliveries.schedule_retry(record.message_id, reason, at, delivered)
    return DeliveryOutcome(Result.RETRY_SCHEDULED, scheduled, reason)


def notification_sent(notification: Notification, cause: Envelope) -> NotificationSent:
    """The event of a sent email; its id derives from the Message-ID, so republishing it after
    a redelivery yields the same event, which consumers store once."""
    return NotificationSent.create(
        notification,
        source=SOURCE,
        correlation_id=cause.correlation_id,
        event_id=f"notification-sent:{notification.message_id.strip('<>')}",
    )
