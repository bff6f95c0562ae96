"""Customers' records in the catalog collection, for the panel's account pane.

The language is a field of the catalog's customer document, where the close and notify read it, so
a change applies from the next invoice and email on.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Customer
from billing_catalog.store import MongoCatalogStore
from billing_invoicing.adapters.settlement_repo import CREDIT_NOTES, amount_of
from billing_invoicing.ports import IssuedCreditNote

Doc = dict[str, Any]


class MongoCustomerAccountBook:
    """:class:`~billing_invoicing.service.customer_accounts.CustomerAccountBook` over the
    catalog's customer documents."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._catalog = MongoCatalogStore(db)
        self._credit_notes = db[CREDIT_NOTES]

    async def customer(self, customer_id: str) -> Customer | None:
        """The customer, or None."""
        return await self._catalog.customer(customer_id)

    async def set_language(self, customer_id: str, language: str) -> bool:
        """Store the language (one single-document update); whether the customer exists."""
        return await self._catalog.set_language(customer_id, language)

    async def credit_notes(self, customer_id: str) -> list[IssuedCreditNote]:
        """The customer's credit notes, newest first (a customer has few: no paging)."""
        cursor = self._credit_notes.find({"customer_id": customer_id}).sort(
            [("issue_date", -1), ("number", -1)]
        )
        return [
            IssuedCreditNote(
                credit_note_id=str(doc["_id"]),
                number=str(doc["number"]),
                invoice_number=str(doc["invoice_number"]),
                currency=str(doc["currency"]),
                amount=amount_of(doc["amount_units"], str(doc["currency"])),
                issue_date=str(doc["issue_date"]),
                reason=str(doc["reason"]),
            )
            async for doc in cursor
        ]
