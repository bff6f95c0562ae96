"""Which event asks for which email: the one table the consumers and the re-driver share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from billing_notify.service.deliver import DeliveryOutcome, MailPolicy, Mode, NotifyPorts
from billing_notify.service.notify_bill import notify_bill_processed
from billing_notify.service.notify_customer import (
    notify_credit_note_issued,
    notify_invoice_overdue,
    notify_payment_recorded,
)
from billing_notify.service.notify_invoice import notify_invoice_finalized
from billing_schemas.events import (
    BillProcessed,
    CreditNoteIssued,
    Envelope,
    InvoiceFinalized,
    InvoiceOverdue,
    PaymentRecorded,
)
from billing_schemas.topics import Topic

E = TypeVar("E", bound=Envelope)


@dataclass(frozen=True)
class UseCase(Generic[E]):
    """One consumed topic: its event, the use case, the partition key of what it emits."""

    topic: Topic
    event_type: type[E]
    run: Callable[[E, NotifyPorts, MailPolicy, Mode], Awaitable[DeliveryOutcome]]
    key: Callable[[E], str]
    title: str
    group_suffix: str
    description: str

    def decode(self, text: str) -> E:
        """The event from its JSON text (as a retry record keeps it)."""
        return TypeAdapter(self.event_type).validate_json(text)


def _customer_key(event: Any) -> str:
    return str(event.data.customer_id)


USE_CASES: tuple[UseCase[Any], ...] = (
    UseCase(
        Topic.INVOICE_FINALIZED,
        InvoiceFinalized,
        notify_invoice_finalized,
        _customer_key,
        "email-finalized-invoices",
        "",
        "Emails each finalized invoice and its PDF to the billing contacts, once.",
    ),
    UseCase(
        Topic.PAYMENT_RECORDED,
        PaymentRecorded,
        notify_payment_recorded,
        _customer_key,
        "email-payment-receipts",
        "-payments",
        "Emails a receipt for each recorded payment to the billing contacts, once.",
    ),
    UseCase(
        Topic.CREDIT_NOTE_ISSUED,
        CreditNoteIssued,
        notify_credit_note_issued,
        _customer_key,
        "email-credit-notes",
        "-credit-notes",
        "Emails each credit note (PDF attached if any) to the billing contacts, once.",
    ),
    UseCase(
        Topic.INVOICE_OVERDUE,
        InvoiceOverdue,
        notify_invoice_overdue,
        _customer_key,
        "email-overdue-reminders",
        "-reminders",
        "Emails a reminder per step of the schedule an overdue invoice reaches, once each.",
    ),
    UseCase(
        Topic.BILL_PROCESSED,
        BillProcessed,
        notify_bill_processed,
        lambda event: str(event.data.bill_id),
        "email-bill-reports",
        "-bill-reports",
        "Emails the operators each processed bill's figures and first rejected rows, once.",
    ),
)

BY_TOPIC: dict[str, UseCase[Any]] = {u.topic.value: u for u in USE_CASES}
"""Use cases by topic name (without namespace), as retry records name them."""
