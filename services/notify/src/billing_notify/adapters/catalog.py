"""Reads customers (their contacts) and invoicing entities (who customer emails come from) from
the catalog collections owned by invoicing."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from billing_notify.domain.errors import UnknownCustomerError
from billing_schemas.catalog import CUSTOMERS, INVOICING_ENTITIES, Customer, InvoicingEntity


class CustomerDirectory(Protocol):
    """Port: the catalog's customers and invoicing entities, by id."""

    async def customer(self, customer_id: str) -> Customer | None:
        """The customer, or None if the catalog has no such customer."""
        ...

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        """The invoicing entity (the seller), or None if the catalog has no such entity."""
        ...


class MongoCustomerDirectory:
    """Customers in MongoDB: ``Customer.model_dump(mode="json")`` plus ``_id`` = customer id."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._customers = db[CUSTOMERS]
        self._entities = db[INVOICING_ENTITIES]

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

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        """See :class:`CustomerDirectory`; a document that no longer validates is refused."""
        doc = await self._entities.find_one({"_id": entity_id})
        if doc is None:
            return None
        try:
            return InvoicingEntity.model_validate({k: v for k, v in doc.items() if k != "_id"})
        except ValidationError as exc:
            msg = f"catalog invoicing entity {entity_id!r} is not valid: {exc}"
            raise UnknownCustomerError(msg) from None


class InMemoryCustomerDirectory:
    """Fake of the port for unit tests."""

    def __init__(self, *customers: Customer, entities: tuple[InvoicingEntity, ...] = ()) -> None:
        self.customers = {c.id: c for c in customers}
        self.entities = {e.id: e for e in entities}

    async def customer(self, customer_id: str) -> Customer | None:
        """See :class:`CustomerDirectory`."""
        return self.customers.get(customer_id)

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        """See :class:`CustomerDirectory`."""
        return self.entities.get(entity_id)
