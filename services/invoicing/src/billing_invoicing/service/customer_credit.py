"""Use case: a customer's credit balance and the ledger behind it (``domain/credit.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing_invoicing.domain.access import Scope, require_customer
from billing_invoicing.domain.credit import CreditEntry, balances
from billing_invoicing.ports import CreditLedger


@dataclass(frozen=True)
class CreditStatement:
    """A customer's balance per currency and the entries that add up to it, oldest first."""

    customer_id: str
    balances: dict[str, Decimal]
    entries: list[CreditEntry]


async def credit_statement(
    credits: CreditLedger, scope: Scope, customer_id: str
) -> CreditStatement:
    """The customer's credit statement (a customer token sees only its own)."""
    require_customer(scope, customer_id)
    entries = await credits.credits_of(customer_id)
    return CreditStatement(customer_id, balances(entries), entries)
