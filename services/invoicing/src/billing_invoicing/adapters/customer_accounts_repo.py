"""Customers' records in the catalog collection, for the panel's account pane.

The language is a field of ``catalog_customers.<id>``, where the close and notify read it, so
a change applies from the next invoice and email on.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_schemas.catalog import CUSTOMERS, Customer

Doc = dict[str, Any]


class MongoCustomerAccountBook:
    """:class:`~billing_invoicing.service.customer_accounts.CustomerAccountBook` over the
    catalog's customer documents."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._customers = db[CUSTOMERS]

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
