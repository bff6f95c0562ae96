"""What the catalog says about the currency of a provider's data that names none.

The catalog belongs to invoicing (``billing_schemas.catalog``: ``catalog_accounts`` maps
``provider:account`` to a customer, ``catalog_customers`` holds each customer's invoicing
currency); ingest only reads it, as rating does.
"""

from __future__ import annotations

from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase

from billing_schemas.catalog import ACCOUNTS, CUSTOMERS


class CatalogCurrencies(Protocol):
    """Port: the invoicing currencies of the customers owning a provider's accounts."""

    async def invoicing_currencies(self, provider: str) -> set[str]:
        """Every currency a customer with an account of ``provider`` is invoiced in."""
        ...


class MongoCatalogCurrencies:
    """:class:`CatalogCurrencies` on the catalog's collections."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._db = db

    async def invoicing_currencies(self, provider: str) -> set[str]:
        """See :class:`CatalogCurrencies`."""
        owners = {
            doc["customer_id"]
            async for doc in self._db[ACCOUNTS].find({"provider": provider}, {"customer_id": 1})
        }
        if not owners:
            return set()
        cursor = self._db[CUSTOMERS].find({"_id": {"$in": sorted(owners)}}, {"currency": 1})
        return {doc["currency"] async for doc in cursor}


class InMemoryCatalogCurrencies:
    """Fake of the port: provider -> currencies."""

    def __init__(self, currencies: dict[str, set[str]] | None = None) -> None:
        self.currencies = dict(currencies or {})

    async def invoicing_currencies(self, provider: str) -> set[str]:
        """See :class:`CatalogCurrencies`."""
        return set(self.currencies.get(provider, set()))
