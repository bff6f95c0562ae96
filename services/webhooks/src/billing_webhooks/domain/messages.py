"""What a webhook says: one pipeline event as a Standard Webhooks message. Pure, no I/O.

The body follows the Standard Webhooks payload shape, ``{"type", "timestamp", "data"}``: the
type is the event's own type (``invoice.paid``), the timestamp when the fact occurred, the data
the event's payload exactly as it travels on Kafka (amounts as decimal strings). The message id
(``webhook-id``) is the pipeline's stable event id, so a receiver deduplicates by it however
often a delivery is retried. The body is made once, when the event is queued: every retry
sends the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from billing_schemas.events import (
    BillProcessed,
    CreditNoteIssued,
    Envelope,
    InvoiceFinalized,
    InvoiceOverdue,
    InvoicePaid,
    InvoiceVoided,
    PaymentRecorded,
)


class EventKind(StrEnum):
    """The events an endpoint can subscribe to (the pipeline's event types)."""

    INVOICE_FINALIZED = "invoice.finalized"
    INVOICE_PAID = "invoice.paid"
    INVOICE_VOIDED = "invoice.voided"
    INVOICE_OVERDUE = "invoice.overdue"
    CREDIT_NOTE_ISSUED = "credit_note.issued"
    PAYMENT_RECORDED = "payment.recorded"
    BILL_PROCESSED = "bill.processed"


WebhookSource = (
    InvoiceFinalized
    | InvoicePaid
    | InvoiceVoided
    | InvoiceOverdue
    | CreditNoteIssued
    | PaymentRecorded
    | BillProcessed
)
"""The pipeline events that become webhooks."""

RANK: dict[EventKind, int] = {
    EventKind.BILL_PROCESSED: 0,
    EventKind.INVOICE_FINALIZED: 0,
    EventKind.PAYMENT_RECORDED: 1,
    EventKind.CREDIT_NOTE_ISSUED: 1,
    EventKind.INVOICE_OVERDUE: 1,
    EventKind.INVOICE_PAID: 2,
    EventKind.INVOICE_VOIDED: 2,
}
"""An invoice's life in order: finalized, then what happens to it, then paid or void. Breaks
ties between events of one invoice that occurred at the same instant (a payment that settles
an invoice publishes ``payment.recorded`` and ``invoice.paid`` together)."""


@dataclass(frozen=True)
class WebhookMessage:
    """One event, ready to be sent to every endpoint that subscribes to it."""

    message_id: str
    kind: EventKind
    customer_id: str | None
    """None for events about no customer (bills): those go to operators' endpoints only."""
    order_key: str
    """Messages with the same key reach an endpoint in order: the invoice id (the bill id)."""
    occurred_at: datetime
    body: str

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        """The order of messages within one key: when, then the invoice's life, then the id."""
        return (self.occurred_at, RANK[self.kind], self.message_id)


def message_for(event: WebhookSource) -> WebhookMessage:
    """The webhook message of a pipeline event (see the module docstring for its shape)."""
    customer_id: str | None
    match event:
        case BillProcessed():
            customer_id, order_key = None, f"bill:{event.data.bill_id}"
        case _:
            customer_id, order_key = event.data.customer_id, f"invoice:{event.data.invoice_id}"
    return WebhookMessage(
        message_id=event.event_id,
        kind=EventKind(event.event_type),
        customer_id=customer_id,
        order_key=order_key,
        occurred_at=event.occurred_at,
        body=body_of(event),
    )


def body_of(event: Envelope) -> str:
    """The JSON body: type, timestamp (ISO 8601, UTC as the event said) and the payload."""
    payload = json.loads(event.model_dump_json(include={"data"}))["data"]
    return json.dumps(
        {
            "type": event.event_type,
            "timestamp": event.occurred_at.isoformat(),
            "data": payload,
        },
        separators=(",", ":"),
        sort_keys=False,
    )
