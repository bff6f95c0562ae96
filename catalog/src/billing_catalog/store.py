"""The catalog's storage: its collections, the one place that writes them and the one that
reads them.

The ``catalog_*`` collections belong to this package, not to a service. Invoicing applies a
catalog file (``billing catalog apply``) and edits a customer's contacts and language through
:class:`MongoCatalogStore`; rating, ingest and notify read through it. No service names these
collections itself (``tests/test_collection_ownership.py`` checks it), so their shape can change
here, with the readers, in one commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Catalog, Contact, Customer, InvoicingEntity, Plan, TaxRate
from billing_catalog.pricing import FxRate, PriceList, Rebilling, immutable_version_changes
from billing_runtime.mongo import put_documents

CUSTOMERS = "catalog_customers"
ACCOUNTS = "catalog_accounts"
INVOICING_ENTITIES = "catalog_invoicing_entities"
PLANS = "catalog_plans"
TAX_RATES = "catalog_tax_rates"
PRICE_LISTS = "catalog_price_lists"
FX_RATES = "catalog_fx_rates"
CATALOG_REVISION = "catalog_revision"
"""One document (``_id`` :data:`REVISION_ID`) whose ``revision`` changes with every catalog apply
that writes anything: readers that keep the catalog in memory re-read it when it moves on."""
REVISION_ID = "revision"

COLLECTIONS = (
    CUSTOMERS,
    ACCOUNTS,
    INVOICING_ENTITIES,
    PLANS,
    TAX_RATES,
    PRICE_LISTS,
    FX_RATES,
    CATALOG_REVISION,
)
"""Every collection the catalog owns."""

Doc = dict[str, Any]


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


@dataclass(frozen=True)
class AccountEntry:
    """A cloud account (``provider:id``) and the customer who owns it."""

    key: str
    customer_id: str
    provider: str
    price_list: str | None


@dataclass(frozen=True)
class PricingTerms:
    """What a customer's charges are priced with: currency, price list (an id, or the customer's
    own inline list) and rebilling policy."""

    customer_id: str
    currency: str
    price_list: str | PriceList
    rebilling: Rebilling


class MongoCatalogStore:
    """Catalog documents: ``_id`` is the entry's id; accounts map ``provider:id`` to a customer."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._db = db

    # -- writing ---------------------------------------------------------------------------

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

    async def replace_contacts(
        self, customer_id: str, before: list[Contact], after: list[Contact]
    ) -> bool:
        """Write ``after`` if the stored contacts are still ``before`` (compare and set, one
        single-document update); whether it was written."""
        result = await self._db[CUSTOMERS].update_one(
            {"_id": customer_id, "contacts": _dump(before)},
            {"$set": {"contacts": _dump(after)}},
        )
        return result.matched_count == 1

    async def set_language(self, customer_id: str, language: str) -> bool:
        """Store the customer's language (one single-document update); whether it exists."""
        result = await self._db[CUSTOMERS].update_one(
            {"_id": customer_id}, {"$set": {"language": language}}
        )
        return result.matched_count == 1

    # -- reading ---------------------------------------------------------------------------

    async def revision(self) -> str | None:
        """A value that changes with every ``catalog apply`` that writes (None: never applied)."""
        doc = await self._db[CATALOG_REVISION].find_one({"_id": REVISION_ID})
        return None if doc is None else str(doc["revision"])

    async def customer(self, customer_id: str) -> Customer | None:
        """One customer, or None; a document that no longer validates raises pydantic's
        ``ValidationError``."""
        doc = await self._db[CUSTOMERS].find_one({"_id": customer_id})
        return None if doc is None else Customer.model_validate(_strip_id(doc))

    async def contacts(self, customer_id: str) -> list[Contact] | None:
        """The customer's contacts, or None if the catalog has no such customer."""
        doc = await self._db[CUSTOMERS].find_one({"_id": customer_id}, {"contacts": 1})
        if doc is None:
            return None
        return [Contact.model_validate(c) for c in doc.get("contacts", [])]

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        """One invoicing entity, or None (an invalid document raises ``ValidationError``)."""
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

    async def subscribed_customers(self) -> list[Customer]:
        """Every customer with at least one subscription (active or not)."""
        return [
            Customer.model_validate(_strip_id(doc))
            async for doc in self._db[CUSTOMERS].find({"subscriptions": {"$ne": []}})
        ]

    async def price_lists(self, ids: Iterable[str] | None) -> dict[str, PriceList]:
        """The stored price lists among ``ids`` (one ``_id`` lookup each, the form FerretDB
        pushes down), or every price list (``None``, one pass)."""
        if ids is None:
            return {
                doc["_id"]: PriceList.model_validate(_strip_id(doc))
                async for doc in self._db[PRICE_LISTS].find({})
            }
        found: dict[str, PriceList] = {}
        for pid in sorted(set(ids)):
            doc = await self._db[PRICE_LISTS].find_one({"_id": pid})
            if doc is not None:
                found[pid] = PriceList.model_validate(_strip_id(doc))
        return found

    async def accounts(self, keys: Iterable[str] | None) -> dict[str, AccountEntry]:
        """The known accounts among ``keys`` (``provider:id``), or every account (``None``)."""
        # an $in costs a pass over the collection on FerretDB: every account costs the same
        query: Doc = {} if keys is None else {"_id": {"$in": sorted(set(keys))}}
        return {
            doc["_id"]: AccountEntry(
                key=doc["_id"],
                customer_id=doc["customer_id"],
                provider=doc.get("provider", ""),
                price_list=doc.get("price_list"),
            )
            async for doc in self._db[ACCOUNTS].find(query)
        }

    async def pricing_terms(self, customer_ids: Iterable[str] | None) -> dict[str, PricingTerms]:
        """Currency, price list and rebilling policy of the given customers (``None``: all)."""
        query: Doc = {} if customer_ids is None else {"_id": {"$in": sorted(set(customer_ids))}}
        fields = {"currency": 1, "price_list": 1, "rebilling": 1}
        return {
            doc["_id"]: PricingTerms(
                customer_id=doc["_id"],
                currency=doc["currency"],
                price_list=(
                    PriceList.model_validate(doc["price_list"])
                    if isinstance(doc["price_list"], dict)
                    else doc["price_list"]
                ),
                rebilling=Rebilling.model_validate(doc.get("rebilling") or {}),
            )
            async for doc in self._db[CUSTOMERS].find(query, fields)
        }

    async def fx_rates(self, currencies: Iterable[str]) -> list[FxRate]:
        """Every rate between two of the given currencies."""
        wanted = sorted(set(currencies))
        return [
            FxRate.model_validate(_strip_id(doc))
            async for doc in self._db[FX_RATES].find(
                {"base": {"$in": wanted}, "quote": {"$in": wanted}}
            )
        ]

    async def invoicing_currencies(self, provider: str) -> set[str]:
        """Every currency a customer with an account of ``provider`` is invoiced in."""
        owners = {
            doc["customer_id"]
            async for doc in self._db[ACCOUNTS].find({"provider": provider}, {"customer_id": 1})
        }
        if not owners:
            return set()
        cursor = self._db[CUSTOMERS].find({"_id": {"$in": sorted(owners)}}, {"currency": 1})
        return {doc["currency"] async for doc in cursor}


def _strip_id(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k != "_id"}


def _dump(contacts: list[Contact]) -> list[Doc]:
    return [c.model_dump(mode="json") for c in contacts]
