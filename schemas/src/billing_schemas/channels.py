"""Channels: one declaration per topic of everything its contract says.

A :class:`Channel` names its topic, the event type(s) it carries, how a message's partition key
is chosen, the consumer groups that read it and the sentence the AsyncAPI documents print. The
consumers (``runtime.consumer``), the publishers, ``billing wait``'s lag watch, the Kubernetes
topic manifests and the AsyncAPI generator all read these declarations, so that a topic's
contract is written once. A wrong pairing fails early: a module that leaves a topic without a
channel fails at import, a consumer whose group the channel does not declare fails when it is
registered, and an event of the wrong type put on a channel fails before anything is sent.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter

from billing_schemas.events import (
    AuditRecorded,
    BillProcessed,
    ChargeRated,
    ChargeStreamEvent,
    CreditNoteIssued,
    GenerateInvoices,
    InvoiceFinalized,
    InvoiceOverdue,
    InvoicePaid,
    InvoiceVoided,
    NotificationSent,
    PaymentRecorded,
    PeriodClosing,
    PeriodReconciled,
    UsageRecorded,
    UsageRejected,
    UsageSubmitted,
)
from billing_schemas.topics import DEFAULT_PARTITIONS, Topic, dead_letter_name, topic_name

E = TypeVar("E")


@dataclass(frozen=True)
class ConsumerGroup:
    """A consumer group: the service that runs it and the suffix that tells its groups apart.

    Its name on the broker is ``<namespace><base><suffix>``, where the base is the service's
    ``consumer_group`` setting (``billing-<service>`` by default).
    """

    service: str
    suffix: str = ""
    awaited: bool = False
    """Whether ``billing wait`` waits for it (the pipeline from usage to the emails)."""

    @property
    def default_name(self) -> str:
        """The group's name with the default base and no namespace (the manifests' name)."""
        return self.name()

    def name(self, base: str | None = None, namespace: str = "") -> str:
        """The group's name on the broker."""
        return f"{namespace}{base or f'billing-{self.service}'}{self.suffix}"


INGEST = ConsumerGroup("ingest")
RATING = ConsumerGroup("rating", awaited=True)
INVOICING = ConsumerGroup("invoicing", awaited=True)
INVOICING_COMMANDS = ConsumerGroup("invoicing", "-commands")
NOTIFY_INVOICES = ConsumerGroup("notify", awaited=True)
NOTIFY_PAYMENTS = ConsumerGroup("notify", "-payments", awaited=True)
NOTIFY_CREDIT_NOTES = ConsumerGroup("notify", "-credit-notes", awaited=True)
NOTIFY_REMINDERS = ConsumerGroup("notify", "-reminders", awaited=True)
NOTIFY_BILL_REPORTS = ConsumerGroup("notify", "-bill-reports", awaited=True)
NOTIFY_VERDICTS = ConsumerGroup("notify", "-reconcile-verdicts", awaited=True)
WEBHOOKS = ConsumerGroup("webhooks")
WEBHOOKS_AUDIT = ConsumerGroup("webhooks", "-audit")


class ChannelError(TypeError):
    """A channel used with an event type, or by a consumer group, it does not declare."""


def _event_types(payload: Any) -> tuple[type[BaseModel], ...]:
    """The event classes of a payload: a class, a union of them, or an annotated union."""
    if typing.get_origin(payload) is typing.Annotated:
        return _event_types(typing.get_args(payload)[0])
    if typing.get_origin(payload) in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(payload) for t in _event_types(arg))
    if isinstance(payload, type) and issubclass(payload, BaseModel):
        return (payload,)
    msg = f"a channel carries pydantic event classes, not {payload!r}"
    raise ChannelError(msg)


@dataclass(frozen=True, eq=False)
class Channel(Generic[E]):
    """A topic's contract: what it carries, how it is keyed, who reads it, what it is for."""

    topic: Topic
    payload: Any
    """The event class it carries, or a union of them (an annotated, discriminated one)."""
    key: Callable[[E], str]
    """The partition key of an event: what keeps the events that must stay in order together."""
    key_description: str
    description: str
    """What one message on it says (the AsyncAPI documents print it)."""
    groups: tuple[ConsumerGroup, ...] = ()
    partitions: int = DEFAULT_PARTITIONS
    """Partitions in the Kubernetes manifests (and the most replicas a consumer scales to)."""
    event_types: tuple[type[BaseModel], ...] = field(init=False)
    adapter: TypeAdapter[E] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_types", _event_types(self.payload))
        object.__setattr__(self, "adapter", TypeAdapter(self.payload))

    def name(self, namespace: str = "") -> str:
        """The topic's name on the broker."""
        return topic_name(self.topic, namespace)

    def dead_letter_name(self, namespace: str = "") -> str:
        """Its dead-letter topic's name on the broker."""
        return dead_letter_name(self.topic, namespace)

    @property
    def payload_name(self) -> str:
        """The event class names, for people."""
        return " | ".join(t.__name__ for t in self.event_types)

    def check(self, event: object) -> E:
        """The event, if it is of a type this channel carries; else :class:`ChannelError`."""
        if not isinstance(event, self.event_types):
            msg = (
                f"{type(event).__name__} cannot be published on {self.topic.value}: "
                f"it carries {self.payload_name}"
            )
            raise ChannelError(msg)
        return typing.cast("E", event)

    def keyed(self, events: Iterable[E]) -> list[tuple[str, E]]:
        """``(partition key, event)`` pairs, each event checked against the channel."""
        return [(self.key(checked), checked) for checked in map(self.check, events)]

    def decode(self, value: bytes) -> E:
        """A message's value as the channel's event (``pydantic.ValidationError`` if not)."""
        return self.adapter.validate_json(value)

    def require(self, group: ConsumerGroup) -> ConsumerGroup:
        """The group, if the channel declares it; else :class:`ChannelError`."""
        if group not in self.groups:
            msg = f"consumer group {group.default_name} is not declared on {self.topic.value}"
            raise ChannelError(msg)
        return group

    def group(self, service: str, suffix: str = "") -> ConsumerGroup:
        """The declared group of ``service`` with ``suffix``; :class:`ChannelError` if none."""
        for group in self.groups:
            if (group.service, group.suffix) == (service, suffix):
                return group
        msg = f"no consumer group billing-{service}{suffix} is declared on {self.topic.value}"
        raise ChannelError(msg)


def _customer(event: Any) -> str:
    return str(event.data.customer_id)


def _bill(event: Any) -> str:
    return str(event.data.bill_id)


USAGE_SUBMITTED: Channel[UsageSubmitted] = Channel(
    Topic.USAGE_SUBMITTED,
    UsageSubmitted,
    lambda event: event.subject or event.data.sub_account_id,
    "subject",
    "Usage events from upstream systems (CloudEvents), validated one by one.",
    (INGEST,),
)
USAGE_RECORDED: Channel[UsageRecorded] = Channel(
    Topic.USAGE_RECORDED,
    UsageRecorded,
    lambda event: event.data.sub_account_id,
    "sub-account",
    "Each accepted usage record.",
    (RATING,),
)
USAGE_REJECTED: Channel[UsageRejected] = Channel(
    Topic.USAGE_REJECTED,
    UsageRejected,
    _bill,
    "bill id",
    "Each rejected row or event, with the reason.",
)
BILL_PROCESSED: Channel[BillProcessed] = Channel(
    Topic.BILL_PROCESSED,
    BillProcessed,
    _bill,
    "bill id",
    "The figures of each bill file loaded.",
    (NOTIFY_BILL_REPORTS, WEBHOOKS),
)
CHARGE_RATED: Channel[ChargeRated | PeriodClosing] = Channel(
    Topic.CHARGE_RATED,
    ChargeStreamEvent,
    _customer,
    "customer",
    "Each usage record rated (cost and price), and the period-close markers put between the "
    "charges of the customer they close.",
    (INVOICING,),
)
INVOICES_GENERATE: Channel[GenerateInvoices] = Channel(
    Topic.INVOICES_GENERATE,
    GenerateInvoices,
    lambda event: event.data.period,
    "period",
    "Command: close a billing period (all customers, or one).",
    (INVOICING_COMMANDS,),
    partitions=1,  # commands are few and read one at a time, in the order given
)
INVOICE_FINALIZED: Channel[InvoiceFinalized] = Channel(
    Topic.INVOICE_FINALIZED,
    InvoiceFinalized,
    _customer,
    "customer",
    "Each invoice finalized, numbered and rendered.",
    (NOTIFY_INVOICES, WEBHOOKS),
)
PAYMENT_RECORDED: Channel[PaymentRecorded] = Channel(
    Topic.PAYMENT_RECORDED,
    PaymentRecorded,
    _customer,
    "customer",
    "Each payment recorded against an invoice.",
    (NOTIFY_PAYMENTS, WEBHOOKS),
)
NOTIFICATION_SENT: Channel[NotificationSent] = Channel(
    Topic.NOTIFICATION_SENT,
    NotificationSent,
    lambda event: event.data.customer_id or event.data.message_id,
    "customer",
    "Each email the SMTP server accepted.",
)
CREDIT_NOTE_ISSUED: Channel[CreditNoteIssued] = Channel(
    Topic.CREDIT_NOTE_ISSUED,
    CreditNoteIssued,
    _customer,
    "customer",
    "Each credit note (a void is one too).",
    (NOTIFY_CREDIT_NOTES, WEBHOOKS),
)
INVOICE_OVERDUE: Channel[InvoiceOverdue] = Channel(
    Topic.INVOICE_OVERDUE,
    InvoiceOverdue,
    _customer,
    "customer",
    "Each invoice overdue, once per day checked.",
    (NOTIFY_REMINDERS, WEBHOOKS),
)
INVOICE_PAID: Channel[InvoicePaid] = Channel(
    Topic.INVOICE_PAID,
    InvoicePaid,
    _customer,
    "customer",
    "Each invoice that became paid, once.",
    (WEBHOOKS,),
)
INVOICE_VOIDED: Channel[InvoiceVoided] = Channel(
    Topic.INVOICE_VOIDED,
    InvoiceVoided,
    _customer,
    "customer",
    "Each invoice voided, once.",
    (WEBHOOKS,),
)
AUDIT_RECORDED: Channel[AuditRecorded] = Channel(
    Topic.AUDIT_RECORDED,
    AuditRecorded,
    lambda event: event.data.customer_id or event.data.subject,
    "customer, else subject",
    "Every action that changed money or access: payments, contacts, closes, the catalog.",
    (WEBHOOKS_AUDIT,),
)
PERIOD_RECONCILED: Channel[PeriodReconciled] = Channel(
    Topic.PERIOD_RECONCILED,
    PeriodReconciled,
    lambda event: event.data.period,
    "period",
    "Each verdict of billing reconcile on a whole period: whether it reconciles, how many "
    "differences are unexplained.",
    (NOTIFY_VERDICTS,),
    partitions=1,  # a few verdicts a month, read in the order they were reached
)

CHANNELS: tuple[Channel[Any], ...] = (
    USAGE_SUBMITTED,
    USAGE_RECORDED,
    USAGE_REJECTED,
    BILL_PROCESSED,
    CHARGE_RATED,
    INVOICES_GENERATE,
    INVOICE_FINALIZED,
    PAYMENT_RECORDED,
    NOTIFICATION_SENT,
    CREDIT_NOTE_ISSUED,
    INVOICE_OVERDUE,
    INVOICE_PAID,
    INVOICE_VOIDED,
    AUDIT_RECORDED,
    PERIOD_RECONCILED,
)

BY_TOPIC: dict[Topic, Channel[Any]] = {channel.topic: channel for channel in CHANNELS}

if len(BY_TOPIC) != len(CHANNELS) or set(BY_TOPIC) != set(Topic):
    _missing = sorted(t.value for t in set(Topic) - set(BY_TOPIC))
    _msg = f"every topic is declared by exactly one channel (no channel: {_missing})"
    raise ImportError(_msg)


def channel_of(topic: Topic) -> Channel[Any]:
    """The channel of a topic."""
    return BY_TOPIC[topic]


def awaited_groups(
    namespace: str = "", bases: dict[str, str] | None = None
) -> list[tuple[str, list[str]]]:
    """``(group, topics)`` of every group ``billing wait`` waits for, names on the broker.

    ``bases`` maps a service to its ``consumer_group`` setting where it is not the default.
    """
    bases = bases or {}
    found: dict[ConsumerGroup, list[str]] = {}
    for channel in CHANNELS:
        for group in channel.groups:
            if group.awaited:
                found.setdefault(group, []).append(channel.name(namespace))
    return [
        (group.name(bases.get(group.service), namespace), topics) for group, topics in found.items()
    ]
