"""The catalog cache: found pricing reused for its TTL, misses always asked again."""

from __future__ import annotations

from collections.abc import Iterable

from billing_catalog.pricing import PriceList
from billing_rating.adapters.catalog import CachedPricingCatalog
from billing_rating.adapters.memory import InMemoryPricingCatalog
from billing_rating.domain.rating import CustomerPricing
from billing_rating.ports import Unpriced


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


class Counting(InMemoryPricingCatalog):
    """Counts the reads of the whole catalog."""

    def __init__(self, pricing: dict[str, CustomerPricing | Unpriced]) -> None:
        super().__init__(pricing)
        self.whole_reads = 0

    async def pricing_for(
        self, account_keys: Iterable[str] | None
    ) -> dict[str, CustomerPricing | Unpriced]:
        if account_keys is None:
            self.whole_reads += 1
        return await super().pricing_for(account_keys)


async def test_the_catalog_is_read_whole_once_and_again_only_when_its_revision_moves() -> None:
    now = [0.0]
    inner = Counting({f"AWS:{n}": pricing(f"c{n}") for n in range(1000)})
    inner.current_revision = "r1"
    cached = CachedPricingCatalog(inner, ttl_seconds=5, clock=lambda: now[0])
    for n in range(0, 1000, 100):  # batches over many accounts: one read of everything
        now[0] += 1
        assert (await cached.pricing_for([f"AWS:{n}"]))[f"AWS:{n}"] == pricing(f"c{n}")
    assert inner.whole_reads == 1
    inner.pricing["AWS:1"] = pricing("globex")  # changed without an apply: not seen
    now[0] += 10
    assert (await cached.pricing_for(["AWS:1"]))["AWS:1"] == pricing("c1")
    assert inner.whole_reads == 1
    inner.current_revision = "r2"  # an apply: seen at the next check, within the TTL
    now[0] += 5
    assert (await cached.pricing_for(["AWS:1"]))["AWS:1"] == pricing("globex")
    assert inner.whole_reads == 2
