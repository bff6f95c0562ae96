"""Use cases of the customer panel's account pane and of the operator's corrections: a
customer's own record (Customer Info), its invoice and email language (Settings), and the
credit notes and voids an operator issues from the console.

Like the other panel use cases, each takes the caller's scope: a customer token sees only its
own customer (another answers as if it did not exist), and only operators correct invoices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from billing_catalog.models import Customer
from billing_invoicing.domain.access import Scope, require_customer, require_operator
from billing_invoicing.service.contacts import CustomerNotFoundError
from billing_invoicing.service.settle_invoices import (
    CreditNoteOutcome,
    SettlementPorts,
    issue_credit_note,
)

LANGUAGES = ("en", "de", "fr")
"""The languages invoices, emails and the portal are written in."""


class UnsupportedLanguageError(ValueError):
    """A language invoices and emails are not written in."""


class CustomerAccountBook(Protocol):
    """Port: the catalog's customer records, read whole, and their language changed."""

    async def customer(self, customer_id: str) -> Customer | None:
        """The customer, or None."""
        ...

    async def set_language(self, customer_id: str, language: str) -> bool:
        """Store the customer's invoice and email language; whether the customer exists."""
        ...

    async def credit_notes(self, customer_id: str) -> list[IssuedCreditNote]:
        """The credit notes issued to the customer, newest first."""
        ...


@dataclass(frozen=True)
class IssuedCreditNote:
    """A credit note as the customer's list shows it (amount positive, tax included)."""

    credit_note_id: str
    number: str
    invoice_number: str
    currency: str
    amount: Decimal
    issue_date: str
    reason: str


class InMemoryCustomerAccountBook:
    """Fake of :class:`CustomerAccountBook` for unit tests."""

    def __init__(self, customers: dict[str, Customer] | None = None) -> None:
        self.customers = dict(customers or {})
        self.notes: dict[str, list[IssuedCreditNote]] = {}

    async def credit_notes(self, customer_id: str) -> list[IssuedCreditNote]:
        """See :class:`CustomerAccountBook`."""
        notes = self.notes.get(customer_id, [])
        return sorted(notes, key=lambda n: (n.issue_date, n.number), reverse=True)

    async def customer(self, customer_id: str) -> Customer | None:
        """See :class:`CustomerAccountBook`."""
        return self.customers.get(customer_id)

    async def set_language(self, customer_id: str, language: str) -> bool:
        """See :class:`CustomerAccountBook`."""
        found = self.customers.get(customer_id)
        if found is None:
            return False
        self.customers[customer_id] = found.model_copy(update={"language": language})
        return True


@dataclass
class CustomerAccounts:
    """What these use cases need: the customer records and the settlement ports."""

    book: CustomerAccountBook
    settlement: SettlementPorts


async def customer_account(accounts: CustomerAccounts, scope: Scope, customer_id: str) -> Customer:
    """The customer's record as its own users may see it (404 for anyone else's)."""
    require_customer(scope, customer_id)
    found = await accounts.book.customer(customer_id)
    if found is None:
        msg = f"no customer {customer_id!r}"
        raise CustomerNotFoundError(msg)
    return found


async def customer_credit_notes(
    accounts: CustomerAccounts, scope: Scope, customer_id: str
) -> list[IssuedCreditNote]:
    """The credit notes issued to the customer, newest first (404 for anyone else's)."""
    await customer_account(accounts, scope, customer_id)
    return await accounts.book.credit_notes(customer_id)


async def set_customer_language(
    accounts: CustomerAccounts, scope: Scope, customer_id: str, language: str
) -> Customer:
    """Change the language of the customer's next invoices and emails (``en``, ``de``,
    ``fr``); what was issued before stays as issued."""
    require_customer(scope, customer_id)
    if language not in LANGUAGES:
        msg = f"language {language!r} is not one of {', '.join(LANGUAGES)}"
        raise UnsupportedLanguageError(msg)
    if not await accounts.book.set_language(customer_id, language):
        msg = f"no customer {customer_id!r}"
        raise CustomerNotFoundError(msg)
    return await customer_account(accounts, scope, customer_id)


async def correct_invoice(
    accounts: CustomerAccounts,
    scope: Scope,
    *,
    number: str,
    amount: Decimal | None,
    reason: str,
    issue_date: date,
    correlation_id: str,
) -> CreditNoteOutcome:
    """Issue a credit note on a finalized invoice, or void it (``amount`` None): operators
    only, since a correction changes what a customer owes."""
    require_operator(scope, "a credit note or a void")
    return await issue_credit_note(
        accounts.settlement,
        number=number,
        amount=amount,
        reason=reason,
        issue_date=issue_date,
        correlation_id=correlation_id,
    )
