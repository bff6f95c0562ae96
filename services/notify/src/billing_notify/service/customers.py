"""What every customer email needs: the customer, who at the customer gets it, and the one
way such an email is built and handed to :func:`~billing_notify.service.deliver.deliver`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from billing_catalog.models import Customer
from billing_notify.domain.errors import UnknownCustomerError
from billing_notify.domain.messages import MessageKind, OutgoingEmail, choose_language
from billing_notify.domain.recipients import (
    Recipients,
    Sender,
    choose_recipients,
    customer_email_sender,
)
from billing_notify.ports import CustomerDirectory
from billing_notify.service.deliver import (
    DeliveryOutcome,
    MailPolicy,
    Mode,
    NotifyPorts,
    Source,
    deliver,
)
from billing_schemas.events import Envelope
from billing_schemas.topics import Topic

log = logging.getLogger("billing.notify")


@dataclass(frozen=True)
class Addressee:
    """A customer, the recipients of its email (read now: a role change applies from the next
    email on), the language the email is written in, and who it is from (the invoicing
    entity that bills the customer)."""

    customer: Customer
    recipients: Recipients
    language: str
    sender: Sender


async def addressee(
    customers: CustomerDirectory,
    customer_id: str,
    kind: MessageKind,
    what: str,
    *,
    policy: MailPolicy,
    entity_id: str | None = None,
) -> Addressee:
    """Look the customer up; :class:`UnknownCustomerError` names ``what`` if it is missing.

    The email is from invoicing entity ``entity_id`` (the one named on the invoice) or, if not
    given, the customer's; an entity the catalog lacks leaves the configured sender alone.
    """
    customer = await customers.customer(customer_id)
    if customer is None:
        msg = f"{what}: customer {customer_id!r} is not in the catalog"
        raise UnknownCustomerError(msg)
    entity_id = entity_id or customer.invoicing_entity
    entity = await customers.invoicing_entity(entity_id)
    if entity is None:
        log.warning("%s: invoicing entity %r is not in the catalog", what, entity_id)
    return Addressee(
        customer=customer,
        recipients=choose_recipients(customer),
        language=choose_language(kind, customer.language),
        sender=customer_email_sender(entity, policy.sender, policy.entity_sender),
    )


class InvoiceDocument(Protocol):
    """What a customer email is about: an invoice, or a document of one (payment, credit note,
    overdue notice); the delivery log records these three ids."""

    @property
    def customer_id(self) -> str: ...

    @property
    def invoice_id(self) -> str: ...

    @property
    def invoice_number(self) -> str: ...


async def deliver_to_customer(
    event: Envelope,
    document: InvoiceDocument,
    *,
    kind: MessageKind,
    message_id: str,
    topic: Topic,
    what: str,
    write: Callable[[Addressee], Awaitable[EmailMessage]],
    ports: NotifyPorts,
    policy: MailPolicy,
    mode: Mode,
    entity_id: str | None = None,
) -> DeliveryOutcome:
    """Deliver the email ``write`` makes for the document's customer (looked up only when the
    email must go out; ``what`` names the document in errors), once per ``message_id``, from
    invoicing entity ``entity_id`` (else the customer's); ``event`` on ``topic`` is what a
    scheduled retry re-drives."""

    async def build() -> OutgoingEmail:
        to = await addressee(
            ports.customers, document.customer_id, kind, what, policy=policy, entity_id=entity_id
        )
        return OutgoingEmail(
            kind=kind,
            message_id=message_id,
            message=await write(to),
            recipients=to.recipients,
            invoice_id=document.invoice_id,
            customer_id=document.customer_id,
            invoice_number=document.invoice_number,
        )

    source = Source(topic.value, document.customer_id, event.model_dump_json())
    return await deliver(message_id, build, source, ports, policy, mode=mode)
