"""The delivery log's records: one per email that notify means to send, keyed by Message-ID.

Lifecycle (each step is one single-document write, recorded *before* the step it announces)::

    pending ──► sending ──► sent
       │           │ └────► uncertain   (no reply after the message data: never resent)
       │           └──────► failed      (5xx reply: dead-lettered)
       └──► retrying ──► pending ...     (4xx, refused connection, timeout before the data)

``pending`` is written before the SMTP conversation starts, ``sending`` right before the message
data (SMTP ``DATA``) is handed over. An SMTP server discards a transaction whose data did not
end, so a crash while ``pending`` means nothing was delivered: the email is sent again. A crash
while ``sending`` is the one case SMTP cannot settle (the server may have taken the message and
its reply was lost): the record becomes ``uncertain`` and is *not* sent again, so that no
recipient gets two copies; it is counted and listed for an operator.

``delivered_to`` lists the recipients whose server accepted the message: a retry goes only to
the others, so a partly refused email never reaches anyone twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from billing_schemas.events import Notification


class DeliveryStatus(StrEnum):
    """Where one email stands."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


SETTLED = frozenset({DeliveryStatus.SENT, DeliveryStatus.UNCERTAIN})
"""Statuses after which the email is never handed to an SMTP server again."""

CLAIMABLE = frozenset({DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.FAILED})
"""Statuses from which a new attempt may start."""


@dataclass(frozen=True)
class DeliveryIntent:
    """An email about to be sent: what the log records before the SMTP conversation.

    ``source_topic`` and ``source_event`` are the event that asked for the email (topic without
    namespace, JSON text): a scheduled retry is re-driven from them, and dead-lettered as them.
    """

    message_id: str
    kind: str
    invoice_id: str | None
    customer_id: str | None
    recipients: tuple[str, ...]
    fallback_recipient: bool = False
    invoice_number: str | None = None
    source_topic: str | None = None
    source_event: str | None = None
    source_key: str | None = None


@dataclass(frozen=True)
class Delivery:
    """A delivery-log record."""

    message_id: str
    kind: str
    invoice_id: str | None
    customer_id: str | None
    recipients: tuple[str, ...]
    status: DeliveryStatus
    attempts: int
    smtp_response: str | None
    created_at: datetime
    updated_at: datetime
    delivered_to: tuple[str, ...] = ()
    fallback_recipient: bool = False
    retries: int = 0
    next_attempt_at: datetime | None = None
    source_topic: str | None = None
    source_event: str | None = None
    source_key: str | None = None
    invoice_number: str | None = None

    @property
    def sent(self) -> bool:
        """Whether the SMTP server accepted this email (then it is never sent again)."""
        return self.status is DeliveryStatus.SENT

    @property
    def undelivered(self) -> tuple[str, ...]:
        """Recipients whose server has not accepted the email yet."""
        done = {a.casefold() for a in self.delivered_to}
        return tuple(a for a in self.recipients if a.casefold() not in done)

    def notification(self) -> Notification:
        """The ``NotificationSent`` payload of a sent email."""
        if not self.sent:
            msg = f"delivery {self.message_id} is {self.status}, not sent"
            raise ValueError(msg)
        return Notification(
            message_id=self.message_id,
            kind=self.kind,
            customer_id=self.customer_id,
            invoice_id=self.invoice_id,
            recipients=list(self.delivered_to or self.recipients),
            smtp_response=self.smtp_response or "",
        )


@dataclass(frozen=True)
class RetryPolicy:
    """When a transient failure is tried again, and when notify gives up.

    The n-th retry waits ``base * 2**(n-1)``, at most ``maximum``; after ``max_retries``
    scheduled retries the email is marked failed and its event dead-lettered.
    """

    base: timedelta = timedelta(seconds=30)
    maximum: timedelta = timedelta(hours=1)
    max_retries: int = 8

    def delay(self, retry: int) -> timedelta:
        """The wait before retry number ``retry`` (1-based): doubling, capped."""
        if retry < 1:
            msg = f"retry numbers start at 1, not {retry}"
            raise ValueError(msg)
        # cap the exponent too: 2**60 seconds would overflow timedelta
        delay: timedelta = self.base * (2 ** min(retry - 1, 30))
        return min(delay, self.maximum)
