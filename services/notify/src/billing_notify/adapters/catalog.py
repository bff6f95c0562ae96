"""Reads customers (their contacts) from the catalog collection owned by invoicing."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from billing_notify.domain.errors import UnknownCustomerError
from billing_schemas.catalog import CUSTOMERS, Customer


class CustomerDirectory(Protocol):
    """Port: the catalog's customers, by id."""

    async def customer(self, customer_id: str) -> Customer | None:
        """The customer, or None if the catalog has no such customer."""
        ...


class MongoCustomerDirectory:
    """Customers in MongoDB: ``Customer.model_dump(mode="json")`` plus ``_id`` = customer id."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._customers = db[CUSTOMERS]

    async def customer(self, customer_id: str) -> Customer | None:
        """See :class:`CustomerDirectory`; a document that no longer validates is refused."""
        doc = await self._customers.find_one({"_id": customer_id})
        if doc is None:
            return None
        try:
            return Customer.model_validate({k: v for k, v in doc.items() if k != "_id"})
        except ValidationError as exc:
            msg = f"catalog customer {customer_id!r} is not a valid customer: {exc}"
            raise UnknownCustomerError(msg) from None


class InMemoryCustomerDirectory:
    """Fake of the port for unit tests."""

    def __init__(self, *customers: Customer) -> None:
        self.customers = {c.id: c for c in customers}

    async def customer(self, customer_id: str) -> Customer | None:
        """See :class:`CustomerDirectory`."""
        return self.customers.get(customer_id)
