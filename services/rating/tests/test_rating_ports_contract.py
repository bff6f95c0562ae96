"""Rating's pricing catalog port, one contract run against the in-memory fake
(``adapters/memory.py``), the MongoDB adapter and its cache: the pricing of exactly the known
accounts asked for (every account when asked for none), and the FX rates of currency pairs
either way round. (The tier and rated stores have theirs in ``test_rating_state_store.py`` and
``test_rating_rated_store.py``.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Catalog
from billing_catalog.store import MongoCatalogStore
from billing_rating.adapters.catalog import CachedPricingCatalog, MongoPricingCatalog
from billing_rating.adapters.memory import InMemoryPricingCatalog
from billing_rating.domain.fx import FxError
from billing_rating.domain.rating import CustomerPricing
from billing_rating.ports import PricingCatalog

if TYPE_CHECKING:
    from conftest import Infra

CATALOG = Catalog.model_validate(
    {
        "invoicing_entities": [
            {
                "id": "e",
                "name": "E",
                "address": {"lines": ["x"], "country": "DE"},
                "number_prefix": "E-",
                "email": "e@example.com",
            }
        ],
        "price_lists": [
            {
                "id": "std",
                "versions": [
                    {
                        "version": 1,
                        "effective_from": "2024-01-01",
                        "rules": [{"kind": "markup", "percent": "10"}],
                    }
                ],
            }
        ],
        "fx_rates": [
            {"base": "USD", "quote": "EUR", "as_of": "2024-09-01", "rate": "0.90"},
            {"base": "USD", "quote": "CHF", "as_of": "2024-09-01", "rate": "0.85"},
        ],
        "customers": [
            {
                "id": customer,
                "name": customer.title(),
                "address": {"lines": ["x"], "country": "DE"},
                "currency": currency,
                "invoicing_entity": "e",
                "price_list": "std",
                "accounts": [{"provider": "AWS", "account_id": a} for a in accounts],
            }
            for customer, currency, accounts in (
                ("acme", "USD", ["1", "2"]),
                ("euro", "EUR", ["9"]),
            )
        ],
    }
)  # fmt: skip
OWNERS = {"AWS:1": ("acme", "USD"), "AWS:2": ("acme", "USD"), "AWS:9": ("euro", "EUR")}


@asynccontextmanager
async def own_database(request: pytest.FixtureRequest) -> AsyncIterator[AsyncDatabase[Any]]:
    """This test's database, dropped afterwards (only the MongoDB runs ask for it: the
    synchronous fixtures are taken here, as pytest-asyncio cannot hand an async one to
    ``getfixturevalue``)."""
    infra: Infra = request.getfixturevalue("infra")
    namespace: str = request.getfixturevalue("namespace")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    try:
        yield client[namespace]
        await client.drop_database(namespace)
    finally:
        await client.close()


@pytest.fixture(
    params=[
        "memory",
        pytest.param("mongo", marks=pytest.mark.integration),
        pytest.param("cached", marks=pytest.mark.integration),
    ]
)
async def catalog(request: pytest.FixtureRequest) -> AsyncIterator[PricingCatalog]:
    if request.param == "memory":
        [price_list] = CATALOG.price_lists
        yield InMemoryPricingCatalog(
            {key: CustomerPricing(c, cur, price_list) for key, (c, cur) in OWNERS.items()},
            CATALOG.fx_rates,
        )
        return
    async with own_database(request) as db:
        await MongoCatalogStore(db).apply(CATALOG)
        mongo = MongoPricingCatalog(db)
        yield mongo if request.param == "mongo" else CachedPricingCatalog(mongo, 60.0)


def owners(found: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {
        key: (p.customer_id, p.currency, p.price_list.id)
        for key, p in found.items()
        if isinstance(p, CustomerPricing)
    }


async def test_the_known_accounts_asked_for_are_priced_and_the_others_absent(
    catalog: PricingCatalog,
) -> None:
    found = await catalog.pricing_for(["AWS:1", "AWS:9", "AWS:404"])
    assert owners(found) == {"AWS:1": ("acme", "USD", "std"), "AWS:9": ("euro", "EUR", "std")}
    assert await catalog.pricing_for([]) == {}
    everything = await catalog.pricing_for(None)
    assert owners(everything) == {k: (*v, "std") for k, v in OWNERS.items()}


async def test_fx_rates_of_the_pairs_asked_for_either_way_round(catalog: PricingCatalog) -> None:
    table = await catalog.fx_rates([("EUR", "USD")])
    day = date(2024, 9, 15)
    assert table.quote("USD", "EUR", day).rate == Decimal("0.90")
    with pytest.raises(FxError, match="CHF"):
        table.quote("USD", "CHF", day)  # a pair not asked for is not in the table
