"""Use case: an operator adds a one-off charge to a customer's open invoice
(``domain/one_off.py``).

The charge goes into the charge stream, keyed by the customer like every rated charge, and the
invoicing consumer puts it on the draft: so it is ordered with the period's close marker like
any charge (before the marker: on this invoice; a close already under way: the consumer puts
it on the next open one), and counted once under its id however often it is sent. The use case
then waits (briefly) until the charge is stored, so that it is on the draft when the command
answers; if the consumer is behind, it says so and the charge arrives when the consumer gets
there.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal

from billing_invoicing.domain.access import Scope, require_operator
from billing_invoicing.domain.invoice import invoice_id_for
from billing_invoicing.domain.one_off import OneOffCharge, OneOffChargeError, rated_one_off
from billing_invoicing.ports import ChargeStream, CustomerCatalog, InvoiceRepository
from billing_schemas.events import ChargeRated

SOURCE = "billing-invoicing"


@dataclass
class OneOffPorts:
    """What the use case needs."""

    catalog: CustomerCatalog
    invoices: InvoiceRepository
    stream: ChargeStream


@dataclass(frozen=True)
class OneOffOutcome:
    """What adding the charge did: ``on_draft`` once the consumer stored it (False: it is in
    the charge stream, not on the draft yet)."""

    charge_id: str
    invoice_id: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    currency: str
    on_draft: bool
    already_added: bool


class UnknownCustomerError(LookupError):
    """No customer with that id in the catalog."""


async def add_one_off_charge(
    ports: OneOffPorts,
    scope: Scope,
    charge: OneOffCharge,
    *,
    correlation_id: str,
    wait_seconds: float = 10.0,
) -> OneOffOutcome:
    """Add the charge to the customer's open invoice for its period (operators only); refused
    (:class:`OneOffChargeError`) if that invoice is issued already."""
    require_operator(scope, "adding a charge")
    customer = await ports.catalog.customer(charge.customer_id)
    if customer is None:
        msg = f"no customer {charge.customer_id!r}"
        raise UnknownCustomerError(msg)
    rated = rated_one_off(charge, customer)
    invoice_id = invoice_id_for(customer.id, charge.period)
    already = await ports.invoices.has_charge(rated.charge_id)
    invoice = await ports.invoices.get(invoice_id)
    if not already and invoice is not None and not invoice.is_draft:
        msg = (
            f"the invoice of {customer.id} for {charge.period} is {invoice.status} already: "
            "add the charge to a later period, or issue a credit note for a correction"
        )
        raise OneOffChargeError(msg)
    if not already:
        await ports.stream.charge_added(
            ChargeRated.create(
                rated,
                source=SOURCE,
                correlation_id=correlation_id,
                event_id=f"charge-rated:{rated.charge_id}",
            )
        )
    on_draft = already or await _stored_within(ports.invoices, rated.charge_id, wait_seconds)
    return OneOffOutcome(
        charge_id=rated.charge_id,
        invoice_id=invoice_id,
        description=rated.service_name,
        quantity=charge.quantity,
        unit_price=charge.unit_price,
        amount=rated.price,
        currency=rated.currency,
        on_draft=on_draft,
        already_added=already,
    )


async def _stored_within(invoices: InvoiceRepository, charge_id: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if await invoices.has_charge(charge_id):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.2)
