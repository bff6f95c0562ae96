"""One-off charges: what an operator adds to a customer's open invoice by hand (a setup fee,
support hours, hardware). Pure rules.

A one-off charge is a rated charge like any other, so it takes the path every charge takes
(the charge stream, the draft ledgers, the stored charges behind the CSV) and is counted once
under its id:

    amount = quantity x unit price, exact (rounded with the invoice's other lines, once);
    its id is given by the operator or derived from what it is (customer, period,
    description, quantity, unit price, tax treatment), so adding the same charge again
    (a retried command) adds nothing.

On the invoice it is a line of its own (``LineKind.ONE_OFF``, its description as given), not
cloud usage: it is never netted against the infrastructure a plan includes. Its tax treatment
is ``standard`` (the invoice's regime, like every line) or ``exempt`` (VAT-exempt supply: 0 %,
with its mention). The line's key carries the treatment (its provider is
:data:`ONE_OFF` or :data:`ONE_OFF_EXEMPT`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from billing_catalog.models import Customer
from billing_schemas.events import PERIOD_PATTERN, ChargeCategory, LineType, RatedCharge
from billing_schemas.money import MoneyError, check_bounds

ONE_OFF = "one-off"
"""The provider of a one-off charge taxed like the rest of the invoice."""
ONE_OFF_EXEMPT = "one-off, VAT exempt"
"""The provider of a VAT-exempt one-off charge."""
MAX_DESCRIPTION = 200


class OneOffTax(StrEnum):
    """How a one-off charge is taxed."""

    STANDARD = "standard"
    EXEMPT = "exempt"


class OneOffChargeError(ValueError):
    """A one-off charge that cannot be added as given (the message says why)."""


@dataclass(frozen=True)
class OneOffCharge:
    """What the operator asks for."""

    customer_id: str
    period: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    tax: OneOffTax = OneOffTax.STANDARD
    charge_id: str | None = None


def is_one_off(provider: str) -> bool:
    """Whether a line's provider says it is a one-off charge."""
    return provider in (ONE_OFF, ONE_OFF_EXEMPT)


def is_tax_exempt(provider: str) -> bool:
    """Whether a line's provider says it is a VAT-exempt one-off charge."""
    return provider == ONE_OFF_EXEMPT


def one_off_charge_id(charge: OneOffCharge) -> str:
    """The operator's id, or one derived from what the charge is (module docstring)."""
    if charge.charge_id:
        return f"one-off:{charge.customer_id}:{charge.charge_id}"
    key = "\n".join(
        (
            charge.customer_id,
            charge.period,
            charge.description.strip(),
            format(charge.quantity.normalize(), "f"),
            format(charge.unit_price.normalize(), "f"),
            charge.tax.value,
        )
    )
    return f"one-off:{charge.customer_id}:" + hashlib.sha256(key.encode()).hexdigest()[:20]


def check_one_off(charge: OneOffCharge) -> None:
    """Refuse what cannot be charged (:class:`OneOffChargeError` saying why)."""
    description = charge.description.strip()
    if not description or len(description) > MAX_DESCRIPTION:
        msg = f"a one-off charge needs a description of 1 to {MAX_DESCRIPTION} characters"
        raise OneOffChargeError(msg)
    if not re.fullmatch(PERIOD_PATTERN, charge.period):
        msg = f"period {charge.period!r} is not YYYY-MM"
        raise OneOffChargeError(msg)
    if charge.quantity <= 0:
        msg = f"the quantity must be positive, not {charge.quantity}"
        raise OneOffChargeError(msg)
    if charge.unit_price == 0:
        msg = "the unit price must not be zero"
        raise OneOffChargeError(msg)
    try:
        check_bounds(charge.quantity * charge.unit_price)
    except MoneyError as exc:
        raise OneOffChargeError(str(exc)) from None


def rated_one_off(charge: OneOffCharge, customer: Customer) -> RatedCharge:
    """The one-off charge as a rated charge in the customer's currency (no provider cost:
    its margin is its price)."""
    check_one_off(charge)
    amount = charge.quantity * charge.unit_price
    charge_id = one_off_charge_id(charge)
    year, month = (int(p) for p in charge.period.split("-"))
    exempt = charge.tax is OneOffTax.EXEMPT
    return RatedCharge(
        charge_id=charge_id,
        record_id=charge_id,
        customer_id=customer.id,
        provider=ONE_OFF_EXEMPT if exempt else ONE_OFF,
        sub_account_id="",
        billing_period=charge.period,
        charge_period_start=datetime(year, month, 1, tzinfo=UTC),
        charge_category=ChargeCategory.PURCHASE,
        line_type=LineType.OTHER,
        service_name=charge.description.strip(),
        description=f"{format(charge.quantity.normalize(), 'f')} x "
        f"{format(charge.unit_price, 'f')} {customer.currency}",
        quantity=charge.quantity,
        unit="unit",
        cost=Decimal(0),
        cost_currency=customer.currency,
        price=amount,
        currency=customer.currency,
        margin=amount,
        rule=f"one-off charge ({charge.tax.value} tax)",
        price_list_id=customer.price_list_id,
        price_list_version=0,
    )
