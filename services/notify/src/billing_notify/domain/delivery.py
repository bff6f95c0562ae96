"""The delivery log's records: one per email that notify means to send, keyed by Message-ID.

Lifecycle: an intent is recorded as ``pending`` *before* the email is handed to the SMTP
server; it becomes ``sent`` (with the server's response) once the server accepted it, or
``failed`` when the server refused it for good. A ``pending`` or ``failed`` record may be tried
again (each try counts in ``attempts``); a ``sent`` one never is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from billing_schemas.events import Notification


class DeliveryStatus(StrEnum):
    """Where one email stands."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class DeliveryIntent:
    """An email about to be sent: what the log records before the SMTP conversation."""

    message_id: str
    kind: str
    invoice_id: str | None
    customer_id: str | None
    recipients: tuple[str, ...]


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

    @property
    def sent(self) -> bool:
        """Whether the SMTP server accepted this email (then it is never sent again)."""
        return self.status is DeliveryStatus.SENT

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
            recipients=list(self.recipients),
            smtp_response=self.smtp_response or "",
        )
