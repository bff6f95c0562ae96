"""What every customer email needs: the customer, and who at the customer gets it."""

from __future__ import annotations

from dataclasses import dataclass

from billing_notify.adapters.catalog import CustomerDirectory
from billing_notify.domain.errors import UnknownCustomerError
from billing_notify.domain.messages import MessageKind, choose_language
from billing_notify.domain.recipients import Recipients, choose_recipients
from billing_schemas.catalog import Customer


@dataclass(frozen=True)
class Addressee:
    """A customer, the recipients of its email (read now: a role change applies from the next
    email on) and the language the email is written in."""

    customer: Customer
    recipients: Recipients
    language: str


async def addressee(
    customers: CustomerDirectory, customer_id: str, kind: MessageKind, what: str
) -> Addressee:
    """Look the customer up; :class:`UnknownCustomerError` names ``what`` if it is missing."""
    customer = await customers.customer(customer_id)
    if customer is None:
        msg = f"{what}: customer {customer_id!r} is not in the catalog"
        raise UnknownCustomerError(msg)
    return Addressee(
        customer=customer,
        recipients=choose_recipients(customer),
        language=choose_language(kind, customer.language),
    )
