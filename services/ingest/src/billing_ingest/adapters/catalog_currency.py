"""What the catalog says about the currency of a provider's data that names none.

The catalog belongs to invoicing (``billing_catalog.models``: ``catalog_accounts`` maps
``provider:account`` to a customer, ``catalog_customers`` holds each customer's invoicing
currency); ingest only reads it, as rating does.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.store import MongoCatalogStore


class MongoCatalogCurrencies:
    """:class:`CatalogCurrencies` on the catalog store."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._catalog = MongoCatalogStore(db)

    async def invoicing_currencies(self, provider: str) -> set[str]:
        """See :class:`CatalogCurrencies`."""
        return await self._catalog.invoicing_currencies(provider)
