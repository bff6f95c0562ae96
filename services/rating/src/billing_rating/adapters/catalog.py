"""Reads account ownership and price lists from the catalog collections (owned by invoicing)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase

from billing_rating.domain.rating import CustomerPricing
from billing_schemas.catalog import ACCOUNTS, CUSTOMERS, PriceList


class PricingCatalog(Protocol):
    """Port: who owns these accounts, and how is each owner priced."""

    async def pricing_for(self, account_keys: Iterable[str]) -> dict[str, CustomerPricing]:
        """Map each known account key to its customer's pricing; unknown keys are absent."""
        ...


class MongoPricingCatalog:
    """The catalog in MongoDB: two queries per batch, whatever its size."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._db = db

    async def pricing_for(self, account_keys: Iterable[str]) -> dict[str, CustomerPricing]:
        """See :class:`PricingCatalog`."""
        keys = sorted(set(account_keys))
        owners = {
            doc["_id"]: doc["customer_id"]
            async for doc in self._db[ACCOUNTS].find({"_id": {"$in": keys}})
        }
        customers = {
            doc["_id"]: CustomerPricing(
                customer_id=doc["_id"],
                currency=doc["currency"],
                price_list=PriceList.model_validate(doc["price_list"]),
            )
            async for doc in self._db[CUSTOMERS].find(
                {"_id": {"$in": sorted(set(owners.values()))}},
                {"currency": 1, "price_list": 1},
            )
        }
        return {key: customers[cid] for key, cid in owners.items() if cid in customers}


class InMemoryPricingCatalog:
    """Fake of the port for unit tests."""

    def __init__(self, pricing: dict[str, CustomerPricing]) -> None:
        self.pricing = pricing

    async def pricing_for(self, account_keys: Iterable[str]) -> dict[str, CustomerPricing]:
        """See :class:`PricingCatalog`."""
        return {k: self.pricing[k] for k in account_keys if k in self.pricing}
