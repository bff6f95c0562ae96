"""Reads customers (their contacts) and invoicing entities (who customer emails come from) from
the catalog (the shared kernel ``billing_catalog``)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Customer, InvoicingEntity
from billing_catalog.store import MongoCatalogStore
from billing_notify.domain.errors import UnknownCustomerError


class MongoCustomerDirectory:
    """Customers and invoicing entities from the catalog store."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._catalog = MongoCatalogStore(db)

    async def customer(self, customer_id: str) -> Customer | None:
        """See :class:`CustomerDirectory`; a document that no longer validates is refused."""
        try:
            return await self._catalog.customer(customer_id)
        except ValidationError as exc:
            msg = f"catalog customer {customer_id!r} is not a valid customer: {exc}"
            raise UnknownCustomerError(msg) from None

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        """See :class:`CustomerDirectory`; a document that no longer validates is refused."""
        try:
            return await self._catalog.invoicing_entity(entity_id)
        except ValidationError as exc:
            msg = f"catalog invoicing entity {entity_id!r} is not valid: {exc}"
            raise UnknownCustomerError(msg) from None
