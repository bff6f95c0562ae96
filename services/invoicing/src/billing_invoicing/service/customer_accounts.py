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

from billing_catalog.models import Customer
from billing_invoicing.domain.access import Scope, require_customer, require_operator
from billing_invoicing.ports import CustomerAccountBook, IssuedCreditNote
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
