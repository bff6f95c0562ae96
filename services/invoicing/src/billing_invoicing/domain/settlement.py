"""What a finalized invoice still owes: payments, credit notes, overdue, void. Pure rules.

A finalized invoice's content never changes. What changes is what has been paid against it
and credited on it (by credit notes, which reference it); from those follow:

* ``owed = total - credited`` (a credit note reduces what the customer owes);
* ``settled = paid + credit_applied`` (the customer's credit balance taken off at
  finalization, ``domain/credit.py``, settles like a payment);
* ``outstanding = max(owed - settled, 0)``;
* ``overpaid = max(settled - owed, 0)``: recorded explicitly as customer credit, never dropped
  (so voiding an invoice on which credit was applied gives the credit back);
* the status: void (cancelled by a credit note for all of it) > paid (nothing outstanding) >
  overdue (past its due date, something outstanding) > partially paid > finalized.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billing_invoicing.domain.invoice import InvoiceStatus
from billing_schemas.money import minor_units, round_to_minor

OPEN_STATUSES = (
    InvoiceStatus.FINALIZED,
    InvoiceStatus.PARTIALLY_PAID,
    InvoiceStatus.OVERDUE,
)
"""Statuses in which an invoice may still owe money (and become overdue)."""

PAYABLE_STATUSES = (*OPEN_STATUSES, InvoiceStatus.PAID)
"""Statuses a payment may be recorded in (a payment on a paid invoice is an overpayment)."""


class SettlementError(ValueError):
    """A payment or credit that cannot be recorded as given (the message says why)."""


@dataclass(frozen=True)
class Settlement:
    """An invoice's standing: exact amounts, in the invoice's currency."""

    total: Decimal
    paid: Decimal
    credited: Decimal
    voided: bool = False
    overdue: bool = False
    credit_applied: Decimal = Decimal(0)
    """The customer's credit taken off at finalization."""

    @property
    def owed(self) -> Decimal:
        """The total less what credit notes gave back."""
        return self.total - self.credited

    @property
    def outstanding(self) -> Decimal:
        """What is still to be paid (never negative)."""
        return max(self.owed - self.paid - self.credit_applied, Decimal(0))

    @property
    def overpaid(self) -> Decimal:
        """What was paid (or credit applied) beyond what is owed: the customer's credit."""
        return max(self.paid + self.credit_applied - self.owed, Decimal(0))

    @property
    def status(self) -> InvoiceStatus:
        """The status that follows from the amounts (module docstring)."""
        if self.voided:
            return InvoiceStatus.VOID
        if self.outstanding == 0:
            return InvoiceStatus.PAID
        if self.overdue:
            return InvoiceStatus.OVERDUE
        if self.paid + self.credit_applied > 0:
            return InvoiceStatus.PARTIALLY_PAID
        return InvoiceStatus.FINALIZED


def check_amount(amount: Decimal, currency: str, what: str) -> None:
    """An amount paid or credited is positive and has no more decimals than the currency."""
    if amount <= 0:
        msg = f"{what} must be positive, not {amount}"
        raise SettlementError(msg)
    decimals = minor_units(currency)
    if amount != amount.quantize(Decimal(1).scaleb(-decimals)):
        msg = f"{what} {amount} has more decimals than {currency}'s {decimals}"
        raise SettlementError(msg)


def days_overdue(due_date: date, as_of: date) -> int:
    """Days past the due date (0 on the due date itself: an invoice is due that day)."""
    return max((as_of - due_date).days, 0)


def payment_id_for(invoice_id: str, method: str, reference: str) -> str:
    """A payment is identified by its invoice, method and reference: recording the same payment
    again (a retried command, a redelivered event) finds it instead of counting it twice."""
    digest = hashlib.sha256(f"{invoice_id}\n{method}\n{reference}".encode()).hexdigest()
    return f"pay-{digest[:20]}"


def split_credit(amount: Decimal, *, total: Decimal, tax: Decimal, currency: str) -> Decimal:
    """The tax part of a credit of ``amount`` (tax included) on an invoice of ``total`` with
    ``tax``: the invoice's proportion, rounded once half-up to minor units."""
    if total == 0:
        return Decimal(0)
    return round_to_minor(amount * tax / total, currency)


def credit_note_tax(
    amount: Decimal,
    *,
    credited_before: Decimal,
    tax_credited_before: Decimal,
    total: Decimal,
    tax: Decimal,
    currency: str,
) -> Decimal:
    """The tax part of a credit note of ``amount`` (tax included) on an invoice of ``total``
    with ``tax``, after notes of ``credited_before`` carrying ``tax_credited_before``.

    The tax credited so far always equals the invoice's proportion of everything credited so
    far, rounded once: this note's tax is that of the cumulative credited amount minus what
    earlier notes took. So partial notes reverse exactly the invoice's tax when they add up to
    its total (three thirds of 100.00 with 15.97 VAT credit 15.97, not 3 x 5.32), and a void,
    which credits what remains, takes exactly the tax that remains.
    """
    cumulative = split_credit(credited_before + amount, total=total, tax=tax, currency=currency)
    return cumulative - tax_credited_before


@dataclass(frozen=True)
class PaymentRecord:
    """A payment as recorded (once, under :func:`payment_id_for`)."""

    payment_id: str
    invoice_id: str
    invoice_number: str
    customer_id: str
    amount: Decimal
    currency: str
    method: str
    reference: str
    paid_on: date
    outstanding_after: Decimal | None = None
    """What was outstanding right after it, fixed the first time it is known (a retry
    announces the same figure)."""
    published: bool = False
    """Whether its ``PaymentRecorded`` was acknowledged by the broker."""


@dataclass(frozen=True)
class CreditNoteRecord:
    """A credit note as issued: amounts tax included (``amount = net + tax``), positive."""

    credit_note_id: str
    number: str
    invoice_id: str
    invoice_number: str
    customer_id: str
    currency: str
    amount: Decimal
    tax: Decimal
    net: Decimal
    reason: str
    void: bool
    issue_date: date
    published: bool = False
    """Whether its ``CreditNoteIssued`` was acknowledged by the broker."""


def credit_note_id_for(invoice_id: str, *, amount: Decimal | None, reason: str, day: date) -> str:
    """A credit note is identified by its invoice and what it credits (a void: the invoice
    alone), so issuing the same note again finds it instead of crediting twice."""
    key = "void" if amount is None else f"{amount}:{reason}:{day.isoformat()}"
    return f"{invoice_id}:cn:" + hashlib.sha256(key.encode()).hexdigest()[:12]
