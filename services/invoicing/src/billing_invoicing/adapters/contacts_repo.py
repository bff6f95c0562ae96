"""Customers' contacts in the catalog's customer documents (the shape notify reads).

Contacts stay where ``catalog apply`` puts them, in the catalog's customer documents: notify
reads the customer at send time, so a change made here applies from the next email on. A change
is one single-document update conditioned on the contacts read (compare and set, in
``billing_catalog.store``), so two concurrent changes never lose one another.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Contact
from billing_catalog.store import MongoCatalogStore

Doc = dict[str, Any]


class MongoContactBook:
    """:class:`~billing_invoicing.service.contacts.ContactBook` over the catalog store."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._catalog = MongoCatalogStore(db)

    async def contacts(self, customer_id: str) -> list[Contact] | None:
        """The customer's contacts, or None if the catalog has no such customer."""
        return await self._catalog.contacts(customer_id)

    async def replace(self, customer_id: str, before: list[Contact], after: list[Contact]) -> bool:
        """Write ``after`` if the stored contacts are still ``before``; whether it was written."""
        return await self._catalog.replace_contacts(customer_id, before, after)
