"""Reads account ownership, price lists, rebilling policies and FX rates from the catalog
(the shared kernel ``billing_catalog``, written by ``billing catalog apply``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.store import MongoCatalogStore
from billing_rating.domain.fx import FxTable
from billing_rating.domain.rating import CustomerPricing
from billing_rating.ports import PricingCatalog, Unpriced


class MongoPricingCatalog:
    """The catalog store: a handful of queries per batch, whatever its size."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._catalog = MongoCatalogStore(db)

    async def revision(self) -> str | None:
        """See :class:`PricingCatalog` (``billing catalog apply`` moves it on)."""
        return await self._catalog.revision()

    async def pricing_for(
        self, account_keys: Iterable[str] | None
    ) -> dict[str, CustomerPricing | Unpriced]:
        """See :class:`PricingCatalog`."""
        every = account_keys is None
        accounts = await self._catalog.accounts(account_keys)
        owners = {a.customer_id for a in accounts.values()}
        customers = await self._catalog.pricing_terms(None if every else owners)
        lists = {a.price_list for a in accounts.values() if a.price_list}
        lists |= {c.price_list for c in customers.values() if isinstance(c.price_list, str)}
        price_lists = await self._catalog.price_lists(None if every else lists)
        result: dict[str, CustomerPricing | Unpriced] = {}
        for key, account in accounts.items():
            customer = customers.get(account.customer_id)
            if customer is None:
                why = f"account {key!r} belongs to customer {account.customer_id!r}, unknown"
                result[key] = Unpriced(why)
                continue
            ref = account.price_list or customer.price_list
            price_list = price_lists.get(ref) if isinstance(ref, str) else ref
            if price_list is None:
                result[key] = Unpriced(
                    f"price list {ref!r} of account {key!r} is not in the catalog"
                )
                continue
            result[key] = CustomerPricing(
                customer_id=customer.customer_id,
                currency=customer.currency,
                price_list=price_list,
                rebilling=customer.rebilling,
            )
        return result

    async def fx_rates(self, pairs: Iterable[tuple[str, str]]) -> FxTable:
        """See :class:`PricingCatalog`."""
        wanted = {p for pair in pairs for p in (pair, pair[::-1])}
        if not wanted:
            return FxTable()
        rates = await self._catalog.fx_rates({c for pair in wanted for c in pair})
        return FxTable(r for r in rates if (r.base, r.quote) in wanted)


class CachedPricingCatalog:
    """The whole catalog's pricing, read in one pass and reused: reading it per batch was
    about half of the rating consumer's time with a thousand customers (FerretDB reads a whole
    collection to answer an ``$in``, so a few accounts cost what all of them do).

    Every ``ttl_seconds`` the catalog's revision (one document, moved on by each ``billing
    catalog apply``) is read, and the pricing read again only if it changed (or if the catalog
    has no revision to tell). An account the snapshot does not know, or cannot price, is asked
    again every batch, so adding it and replaying its dead letters works at once. A change to
    a known account (its customer, price list or policy, a new price-list version) or new FX
    rates are seen by rating at most ``ttl_seconds`` later (docs/rating.md). Price-list versions
    in effect are immutable, so what a cached entry says of them stays true.
    """

    def __init__(
        self,
        inner: PricingCatalog,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl = ttl_seconds
        self._clock = clock
        self._pricing: dict[str, CustomerPricing] = {}
        self._checked: float | None = None
        self._revision: str | None = None
        self._fx: dict[frozenset[tuple[str, str]], tuple[float, FxTable]] = {}

    async def revision(self) -> str | None:
        """See :class:`PricingCatalog`."""
        return await self._inner.revision()

    async def _refresh(self) -> None:
        now = self._clock()
        if self._checked is not None and now - self._checked < self._ttl:
            return
        revision = await self._inner.revision()
        if self._checked is None or revision is None or revision != self._revision:
            everything = await self._inner.pricing_for(None)
            self._pricing = {k: p for k, p in everything.items() if isinstance(p, CustomerPricing)}
            self._fx.clear()
        self._checked, self._revision = now, revision

    async def pricing_for(
        self, account_keys: Iterable[str] | None
    ) -> dict[str, CustomerPricing | Unpriced]:
        """See :class:`PricingCatalog`."""
        await self._refresh()
        if account_keys is None:
            return dict(self._pricing)
        keys = set(account_keys)
        result: dict[str, CustomerPricing | Unpriced] = {
            k: self._pricing[k] for k in keys if k in self._pricing
        }
        missing = keys - result.keys()
        if missing:
            fresh = await self._inner.pricing_for(missing)
            for key, found in fresh.items():
                if isinstance(found, CustomerPricing):
                    self._pricing[key] = found
            result |= fresh
        return result

    async def fx_rates(self, pairs: Iterable[tuple[str, str]]) -> FxTable:
        """See :class:`PricingCatalog`."""
        wanted = frozenset(pairs)
        if not wanted:
            return FxTable()
        now = self._clock()
        cached = self._fx.get(wanted)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        table = await self._inner.fx_rates(wanted)
        self._fx[wanted] = (now, table)
        return table
