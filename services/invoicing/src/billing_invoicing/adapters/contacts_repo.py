"""Customers' contacts in the catalog's customer documents (the shape notify reads).

Contacts stay where ``catalog apply`` puts them, in ``catalog_customers.<id>.contacts``, as
``Contact.model_dump(mode="json")``: notify reads the customer at send time, so a change made
here applies from the next email on. A change is one single-document update conditioned on the
contacts read (compare and set), so two concurrent changes never lose one another.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_schemas.catalog import CUSTOMERS, Contact

Doc = dict[str, Any]


def _dump(contacts: list[Contact]) -> list[Doc]:
    return [c.model_dump(mode="json") for c in contacts]


class MongoContactBook:
    """:class:`~billing_invoicing.service.contacts.ContactBook` over the catalog collection."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._customers = db[CUSTOMERS]

    async def contacts(self, customer_id: str) -> list[Contact] | None:
        """The customer's contacts, or None if the catalog has no such customer."""
        doc = await self._customers.find_one({"_id": customer_id}, {"contacts": 1})
        if doc is None:
            return None
        return [Contact.model_validate(c) for c in doc.get("contacts", [])]

    async def replace(self, customer_id: str, before: list[Contact], after: list[Contact]) -> bool:
        """Write ``after`` if the stored contacts are still ``before``; whether it was written."""
        result = await self._customers.update_one(
            {"_id": customer_id, "contacts": _dump(before)},
            {"$set": {"contacts": _dump(after)}},
        )
        return result.matched_count == 1
