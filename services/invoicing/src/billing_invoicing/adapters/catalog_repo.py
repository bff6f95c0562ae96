"""The catalog in MongoDB: applied declaratively, read by every service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from billing_schemas.catalog import (
    ACCOUNTS,
    CUSTOMERS,
    INVOICING_ENTITIES,
    Catalog,
    Customer,
    InvoicingEntity,
)


@dataclass(frozen=True)
class ApplyResult:
    """What ``catalog apply`` changed."""

    invoicing_entities: int
    customers: int
    accounts: int


class MongoCatalogRepository:
    """Catalog documents: ``_id`` is the entry's id; accounts map ``provider:id`` to a customer."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._db = db

    async def apply(self, catalog: Catalog) -> ApplyResult:
        """Upsert every entry of the file (applying the same file twice changes nothing).

        Entries absent from the file are left alone: a catalog file may describe a subset.
        """
        entities = [
            ReplaceOne({"_id": e.id}, {"_id": e.id, **e.model_dump(mode="json")}, upsert=True)
            for e in catalog.invoicing_entities
        ]
        customers = [
            ReplaceOne({"_id": c.id}, {"_id": c.id, **c.model_dump(mode="json")}, upsert=True)
            for c in catalog.customers
        ]
        accounts = [
            ReplaceOne(
                {"_id": a.key},
                {"_id": a.key, "customer_id": c.id, "provider": a.provider},
                upsert=True,
            )
            for c in catalog.customers
            for a in c.accounts
        ]
        for collection, ops in (
            (INVOICING_ENTITIES, entities),
            (CUSTOMERS, customers),
            (ACCOUNTS, accounts),
        ):
            if ops:
                await self._db[collection].bulk_write(ops, ordered=False)
        return ApplyResult(len(entities), len(customers), len(accounts))

    async def customer(self, customer_id: str) -> Customer | None:
        """One customer, or None."""
        doc = await self._db[CUSTOMERS].find_one({"_id": customer_id})
        return None if doc is None else Customer.model_validate(_strip_id(doc))

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        """One invoicing entity, or None."""
        doc = await self._db[INVOICING_ENTITIES].find_one({"_id": entity_id})
        return None if doc is None else InvoicingEntity.model_validate(_strip_id(doc))


def _strip_id(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_id"}
