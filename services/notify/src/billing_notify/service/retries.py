"""Use case: re-drive the emails whose retry is due (scheduled after a transient failure).

The retry record is the delivery-log record itself: status ``retrying``, ``next_attempt_at``,
and the event that asked for the email. Taking one pushes its time ahead by a lease in the same
atomic step, so replicas running this side by side never take the same record at once; a
replica that dies while holding it only delays the retry by the lease.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from billing_notify.domain.delivery import Delivery
from billing_notify.domain.errors import NotificationError
from billing_notify.service.deliver import (
    DeliveryOutcome,
    MailPolicy,
    Mode,
    NotifyPorts,
    Result,
)
from billing_notify.service.failures import own_failure
from billing_notify.service.use_cases import BY_TOPIC, UseCase

log = logging.getLogger("billing.notify.retries")


@dataclass(frozen=True)
class Redriven:
    """One re-driven email: the record as it was taken, the event and what happened."""

    taken: Delivery
    use_case: UseCase[Any] | None
    event: Any
    outcome: DeliveryOutcome


async def redrive_due(ports: NotifyPorts, policy: MailPolicy, lease: timedelta) -> Redriven | None:
    """Take one due retry and run its use case again; None when none is due.

    A retry that cannot be run (its event no longer decodes, or the use case refuses it for
    good) is marked failed: the caller dead-letters ``taken.source_event``.
    """
    taken = await ports.deliveries.claim_due_retry(ports.clock(), lease)
    if taken is None:
        return None
    use_case = BY_TOPIC.get(taken.source_topic or "")
    if use_case is None or taken.source_event is None:
        why = f"cannot retry: no known source event (topic {taken.source_topic!r})"
        failed = await ports.deliveries.mark_failed(taken.message_id, why)
        return Redriven(taken, use_case, None, DeliveryOutcome(Result.FAILED, failed, why))
    try:
        event = use_case.decode(taken.source_event)
    except ValidationError as exc:
        why = f"cannot retry: {use_case.event_type.__name__} no longer validates: {exc}"
        failed = await ports.deliveries.mark_failed(taken.message_id, why)
        return Redriven(taken, use_case, None, DeliveryOutcome(Result.FAILED, failed, why))
    try:
        outcome = await use_case.run(event, ports, policy, Mode.REDRIVE)
    except Exception as exc:
        # the message's own failure (an unexpected one included) fails it for good: taking it
        # again after each lease would fail the same way forever
        reason = own_failure(exc)
        if reason is None:
            raise  # the database or the network: taken again after the lease
        if not isinstance(exc, NotificationError):
            log.exception("retry of %s failed unexpectedly", taken.message_id)
        failed = await ports.deliveries.mark_failed(taken.message_id, reason)
        outcome = DeliveryOutcome(Result.FAILED, failed, reason)
    if outcome.result is Result.SKIPPED and outcome.delivery is None:
        # nothing to send any more (e.g. the operators' list was emptied): stop retrying
        why = f"no longer sent: {outcome.reason}"
        failed = await ports.deliveries.mark_failed(taken.message_id, why)
        outcome = DeliveryOutcome(Result.FAILED, failed, why)
    log.info("retried %s: %s", taken.message_id, outcome.result)
    return Redriven(taken, use_case, event, outcome)
