"""Customers' records in the catalog collection, for the panel's account pane.

The language is a field of ``catalog_customers.<id>``, where the close and notify read it, so
a change applies from the next invoice and email on.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters.settlement_repo import CREDIT_NOTES, amount_of
from billing_invoicing.service.customer_accounts import IssuedCreditNote
from billing_schemas.catalog import CUSTOMERS, Customer

Doc = dict[str, Any]


class MongoCustomerAccountBook:
    """:class:`~billing_invoicing.service.customer_accounts.CustomerAccountBook` over the
    catalog's customer documents."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._customers = db[CUSTOMERS]
        self._credit_notes = db[CREDIT_NOTES]

    async def customer(self, customer_id: str) -> Customer | None:
        """The customer, or None."""
        doc = await self._customers.find_one({"_id": customer_id})
        if doc is None:
            return None
        doc.pop("_id", None)
        return Customer.model_validate(doc)

    async def set_language(self, customer_id: str, language: str) -> bool:
        """Store the language (one single-document update); whether the customer exists."""
        result = await self._customers.update_one(
            {"_id": customer_id}, {"$set": {"language": language}}
        )
        return result.matched_count == 1

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
