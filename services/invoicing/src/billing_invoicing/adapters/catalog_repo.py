"""The catalog in MongoDB: applied declaratively, read by every service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.domain.invoice import active_subscriptions
from billing_runtime.mongo import put_documents
from billing_schemas.catalog import (
    ACCOUNTS,
    CATALOG_REVISION,
    CUSTOMERS,
    INVOICING_ENTITIES,
    PLANS,
    REVISION_ID,
    TAX_RATES,
    Catalog,
    Customer,
    InvoicingEntity,
    Plan,
    TaxRate,
)
from billing_schemas.pricing import FX_RATES, PRICE_LISTS, PriceList, immutable_version_changes


class CatalogConflictError(ValueError):
    """The file would change what may no longer change (a price-list version in effect)."""


@dataclass(frozen=True)
class ApplyResult:
    """What ``catalog apply`` changed."""

    invoicing_entities: int
    customers: int
    accounts: int
    price_lists: int = 0
    fx_rates: int = 0
    tax_rates: int = 0
    plans: int = 0


class MongoCatalogRepository:
    """Catalog documents: ``_id`` is the entry's id; accounts map ``provider:id`` to a customer."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._db = db

    async def apply(self, catalog: Catalog, today: date | None = None) -> ApplyResult:
        """Upsert every entry of the file (applying the same file twice changes nothing).

        Entries absent from the file are left alone: a catalog file may describe a subset.
        A price-list version already in effect on ``today`` may not be changed or removed
        (:class:`CatalogConflictError`, nothing written); add a version instead.
        """
        await self._check_price_lists(catalog, today or datetime.now(UTC).date())
        entities = [{"_id": e.id, **e.model_dump(mode="json")} for e in catalog.invoicing_entities]
        price_lists = [{"_id": p.id, **p.model_dump(mode="json")} for p in catalog.price_lists]
        fx_rates = [{"_id": r.key, **r.model_dump(mode="json")} for r in catalog.fx_rates]
        tax_rates = [{"_id": r.key, **r.model_dump(mode="json")} for r in catalog.tax_rates]
        plans = [{"_id": p.id, **p.model_dump(mode="json")} for p in catalog.plans]
        customers = [{"_id": c.id, **c.model_dump(mode="json")} for c in catalog.customers]
        accounts = [
            {
                "_id": a.key,
                "customer_id": c.id,
                "provider": a.provider,
                "price_list": a.price_list,
            }
            for c in catalog.customers
            for a in c.accounts
        ]
        written = 0
        for collection, documents in (
            (INVOICING_ENTITIES, entities),
            (PRICE_LISTS, price_lists),
            (FX_RATES, fx_rates),
            (TAX_RATES, tax_rates),
            (PLANS, plans),
            (CUSTOMERS, customers),
            (ACCOUNTS, accounts),
        ):
            written += await put_documents(self._db[collection], documents)
        if written:  # readers that keep the catalog in memory (rating) read it again
            await self._db[CATALOG_REVISION].update_one(
                {"_id": REVISION_ID},
                {"$set": {"revision": uuid.uuid4().hex, "applied_at": datetime.now(UTC)}},
                upsert=True,
            )
        return ApplyResult(
            len(entities),
            len(customers),
            len(accounts),
            len(price_lists),
            len(fx_rates),
            len(tax_rates),
            len(plans),
        )

    async def _check_price_lists(self, catalog: Catalog, today: date) -> None:
        incoming = {p.id: p for p in catalog.price_lists}
        stored = {
            doc["_id"]: PriceList.model_validate(_strip_id(doc))
            async for doc in self._db[PRICE_LISTS].find({"_id": {"$in": sorted(incoming)}})
        }
        problems = [
            problem
            for pid, old in sorted(stored.items())
            for problem in immutable_version_changes(old, incoming[pid], today)
        ]
        inline = {
            c.id: c.price_list for c in catalog.customers if isinstance(c.price_list, PriceList)
        }
        async for doc in self._db[CUSTOMERS].find(
            {"_id": {"$in": sorted(inline)}}, {"price_list": 1}
        ):
            if isinstance(doc.get("price_list"), dict):
                old = PriceList.model_validate(doc["price_list"])
                problems += immutable_version_changes(old, inline[doc["_id"]], today)
        if problems:
            raise CatalogConflictError("\n".join(problems))

    async def customer(self, customer_id: str) -> Customer | None:
        """One customer, or None."""
        doc = await self._db[CUSTOMERS].find_one({"_id": customer_id})
        return None if doc is None else Customer.model_validate(_strip_id(doc))

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        """One invoicing entity, or None."""
        doc = await self._db[INVOICING_ENTITIES].find_one({"_id": entity_id})
        return None if doc is None else InvoicingEntity.model_validate(_strip_id(doc))

    async def plans(self) -> dict[str, Plan]:
        """Every subscription plan, by id."""
        return {
            doc["_id"]: Plan.model_validate(_strip_id(doc))
            async for doc in self._db[PLANS].find({})
        }

    async def tax_rates(self) -> list[TaxRate]:
        """Every tax rate (all countries, all dates: a few hundred at most)."""
        return [
            TaxRate.model_validate(_strip_id(doc))
            async for doc in self._db[TAX_RATES].find({}).sort("_id", 1)
        ]

    async def customers_with_subscriptions(self, period: str) -> list[str]:
        """Customers with a subscription active in the period (they get an invoice even
        without usage)."""
        result = []
        async for doc in self._db[CUSTOMERS].find({"subscriptions": {"$ne": []}}):
            customer = Customer.model_validate(_strip_id(doc))
            if active_subscriptions(customer.subscriptions, period):
                result.append(customer.id)
        return sorted(result)

    async def price_lists(self, ids: list[str]) -> dict[str, PriceList]:
        """The stored price lists among ``ids`` (what the audit trail compares a new catalog
        with; one ``_id`` lookup each, the form FerretDB pushes down)."""
        found: dict[str, PriceList] = {}
        for pid in sorted(set(ids)):
            doc = await self._db[PRICE_LISTS].find_one({"_id": pid})
            if doc is not None:
                found[pid] = PriceList.model_validate(_strip_id(doc))
        return found


def _strip_id(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_id"}
