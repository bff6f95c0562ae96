"""A customer's credit balance: money the seller owes the customer, per currency. Pure rules.

The balance is a ledger of entries that add up to it; nothing else holds it. An entry is
recorded once under a deterministic id (what caused it), so a command or a close that runs
again records nothing twice:

* ``overpayment:<payment or credit note id>``: an invoice was paid beyond what it owes (a
  payment on top of what was owed, or a credit note on an invoice paid already, or a void);
  the grants caused by one invoice always add up to its ``overpaid``
  (:func:`overpayment_entry`);
* ``negative-total:<invoice id>``: an invoice whose credits exceed its charges owes the
  customer the difference;
* ``applied:<invoice id>`` (negative): credit taken off an invoice at its finalization.

Amounts are in the currency's minor units; a balance in one currency is never used on an
invoice in another.

Applying credit (:func:`credit_to_apply`): when an invoice is finalized, the customer's balance
in the invoice's currency is taken off what it asks to be paid, up to its total, never below
zero due:

    applied = min(max(balance, 0), max(total, 0))

It is applied after tax, like a payment: the invoice's lines, taxes and total stay what they
are (the credit was taxed where it arose: a credit note carries its own tax part, an
overpayment is money already received), and it shows a line "Credit applied" between the
total and the amount due. The amount is decided once, when the invoice is frozen, and kept on
it, so a close delivered again applies the same amount, and its ledger entry
``applied:<invoice id>`` is recorded once. The invoice then counts it as settled
(``domain/settlement.py``): voiding it later gives the credit back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from billing_invoicing.domain.invoice import InvoiceDocument


class CreditKind(StrEnum):
    """Why an entry moved the balance."""

    OVERPAYMENT = "overpayment"
    NEGATIVE_TOTAL = "negative_total"
    APPLIED = "applied"

    @property
    def grants(self) -> bool:
        """Whether entries of this kind give credit (rather than use it)."""
        return self is not CreditKind.APPLIED


@dataclass(frozen=True)
class CreditEntry:
    """One movement of a customer's credit balance (positive: granted; negative: used)."""

    entry_id: str
    customer_id: str
    currency: str
    amount: Decimal
    kind: CreditKind
    reason: str
    invoice_id: str | None = None
    invoice_number: str | None = None
    recorded_at: datetime | None = None


def balances(entries: Iterable[CreditEntry]) -> dict[str, Decimal]:
    """The balance per currency: the sum of the entries (currencies never mix)."""
    result: dict[str, Decimal] = {}
    for entry in entries:
        result[entry.currency] = result.get(entry.currency, Decimal(0)) + entry.amount
    return result


def granted_by(entries: Iterable[CreditEntry], invoice_id: str) -> Decimal:
    """What the entries granted because of one invoice (its overpayment, its negative total)."""
    return sum(
        (e.amount for e in entries if e.invoice_id == invoice_id and e.kind.grants), Decimal(0)
    )


def credit_to_apply(balance: Decimal, total: Decimal) -> Decimal:
    """What of a balance an invoice of ``total`` takes (module docstring): all of it up to the
    total; nothing on a negative or zero invoice, or from a negative balance."""
    return min(max(balance, Decimal(0)), max(total, Decimal(0)))


def applied_entry(
    *,
    customer_id: str,
    invoice_id: str,
    currency: str,
    amount: Decimal,
    period: str,
    at: datetime,
) -> CreditEntry:
    """The ledger entry of credit taken off an invoice at its finalization (negative)."""
    return CreditEntry(
        entry_id=f"applied:{invoice_id}",
        customer_id=customer_id,
        currency=currency,
        amount=-amount,
        kind=CreditKind.APPLIED,
        reason=f"applied to the invoice of {period}",
        invoice_id=invoice_id,
        recorded_at=at,
    )


def negative_total_entry(document: InvoiceDocument, at: datetime) -> CreditEntry:
    """What a negative invoice owes the customer (``-total``), as the entry of its
    finalization."""
    return CreditEntry(
        entry_id=f"negative-total:{document.invoice_id}",
        customer_id=document.customer_id,
        currency=document.currency,
        amount=-document.total,
        kind=CreditKind.NEGATIVE_TOTAL,
        reason=f"credits exceed charges on invoice {document.number}",
        invoice_id=document.invoice_id,
        invoice_number=document.number,
        recorded_at=at,
    )


def overpayment_entry(
    *,
    customer_id: str,
    invoice_id: str,
    invoice_number: str | None,
    currency: str,
    overpaid: Decimal,
    granted: Decimal,
    cause: str,
    at: datetime,
) -> CreditEntry | None:
    """The entry that makes an invoice's grants add up to its ``overpaid`` (None when they do
    already), recorded under ``cause``: the payment or credit note that raised it."""
    if overpaid <= granted:
        return None
    return CreditEntry(
        entry_id=f"overpayment:{cause}",
        customer_id=customer_id,
        currency=currency,
        amount=overpaid - granted,
        kind=CreditKind.OVERPAYMENT,
        reason=f"overpayment of invoice {invoice_number}",
        invoice_id=invoice_id,
        invoice_number=invoice_number,
        recorded_at=at,
    )
