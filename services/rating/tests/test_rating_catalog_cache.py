"""The catalog cache: found pricing reused for its TTL, misses always asked again."""

from __future__ import annotations

from billing_rating.adapters.catalog import CachedPricingCatalog, InMemoryPricingCatalog
from billing_rating.domain.rating import CustomerPricing
from billing_schemas.pricing import PriceList


def pricing(customer: str) -> CustomerPricing:
    price_list = PriceList.model_validate({"id": "p", "version": 1, "markup_percent": "10"})
    return CustomerPricing(customer, "USD", price_list)


async def test_a_priced_account_is_reused_for_the_ttl_and_an_unknown_one_is_asked_each_time() -> (
    None
):
    now = [100.0]
    inner = InMemoryPricingCatalog({"AWS:1": pricing("acme")})
    cached = CachedPricingCatalog(inner, ttl_seconds=5, clock=lambda: now[0])
    assert (await cached.pricing_for(["AWS:1", "AWS:2"]))["AWS:1"] == pricing("acme")
    # the catalog changes: account 1 moves to another customer, account 2 is added
    inner.pricing = {"AWS:1": pricing("globex"), "AWS:2": pricing("initech")}
    now[0] = 104.9  # 4.9 s later: account 1 still as read, account 2 (a miss) read afresh
    seen = await cached.pricing_for(["AWS:1", "AWS:2"])
    assert (seen["AWS:1"], seen["AWS:2"]) == (pricing("acme"), pricing("initech"))
    now[0] = 105.0  # 5 s after the first read: the change is seen
    assert (await cached.pricing_for(["AWS:1"]))["AWS:1"] == pricing("globex")
