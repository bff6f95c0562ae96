"""The catalog as invoicing uses it: the shared kernel's store (``billing_catalog.store``)
plus the one question only invoicing asks of it."""

from __future__ import annotations

from billing_catalog.store import ApplyResult, CatalogConflictError, MongoCatalogStore
from billing_invoicing.domain.invoice import active_subscriptions

__all__ = ["ApplyResult", "CatalogConflictError", "MongoCatalogRepository"]


class MongoCatalogRepository(MongoCatalogStore):
    """The catalog store, applied and read by invoicing."""

    async def customers_with_subscriptions(self, period: str) -> list[str]:
        """Customers with a subscription active in the period (they get an invoice even
        without usage)."""
        customers = await self.subscribed_customers()
        return sorted(c.id for c in customers if active_subscriptions(c.subscriptions, period))
