"""Benchmark: rating a redelivered 500-record tiered batch beside a growing ``rating_tier_places``.

A redelivery after a crash (a new consumer process, which knows no head) meets its own claims:
rating reads them back (``MongoTierStore.load(records=True)``) and rates the batch again. This
times that batch at each size of the collection, with the store as it is (one ``(key,
record_id)`` equality per record, 32 at a time) beside the single ``$in`` query it replaced
(FerretDB pushes down no ``$in``: that query reads the whole collection), alternating the two.

Run against a MongoDB-wire database (``--mongodb-url``, default ``$MONGODB_URL``): each size
uses a database of its own, dropped afterwards. The other customers' places are inserted
directly (one key per 500 places), then the batch is rated once and redelivered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.pricing import PriceList
from billing_rating.adapters.memory import InMemoryPricingCatalog
from billing_rating.adapters.rated_store import MongoRatedStore
from billing_rating.adapters.tier_store import CLAIMS, MongoTierStore, _claim, place_id
from billing_rating.domain.rating import CustomerPricing
from billing_rating.domain.tiers import Claim
from billing_rating.service.rate_batch import rate_batch
from billing_schemas.events import ChargeCategory, LineType, UsageRecord, UsageRecorded

BATCH = 500
PER_KEY = 500


TIERS = [{"up_to": "100", "unit_price": "0.10"}, {"unit_price": "0.05"}]


def customer() -> CustomerPricing:
    """One customer (account AWS 111) with a graduated quantity tier on Amazon S3."""
    version = {
        "version": 1,
        "effective_from": "2024-01-01",
        "currency": "USD",
        "rules": [{"kind": "tiered", "mode": "graduated", "tiers": TIERS, "service": "Amazon S3"}],
    }
    return CustomerPricing(
        "acme", "USD", PriceList.model_validate({"id": "pl", "versions": [version]})
    )


def usage(n: int) -> UsageRecorded:
    day = 1 + n % 28
    record = UsageRecord(
        record_id=f"r{n}",
        provider="AWS",
        billing_account_id="999",
        sub_account_id="111",
        billing_period="2024-09",
        charge_period_start=datetime(2024, 9, day, tzinfo=UTC),
        charge_period_end=datetime(2024, 9, day, 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name="Amazon S3",
        currency="USD",
        pricing_quantity=Decimal(1),
        billed_cost=Decimal("0.5"),
    )
    return UsageRecorded.create(record, source="bench", correlation_id="bench")


class InQueryTierStore(MongoTierStore):
    """The store as it was: a batch's own claims read with one ``$in`` query."""

    async def _claims_of(self, pairs: list[tuple[str, str]]) -> list[Claim]:
        query = {
            "key": {"$in": sorted({key for key, _ in pairs})},
            "record_id": {"$in": sorted({record_id for _, record_id in pairs})},
        }
        wanted = set(pairs)
        docs = [doc async for doc in self._places.find(query)]
        return [c for c in map(_claim, docs) if (c.key, c.record_id) in wanted]


async def fill(db: AsyncDatabase[dict[str, Any]], places: int) -> None:
    store = MongoTierStore(db)
    await store.load([])  # its index, as rating makes it
    docs = []
    for n in range(places):
        key, seq = f"other-{n // PER_KEY}|2024-09|pl|tiered@*/Amazon S3/*", n % PER_KEY + 1
        docs.append({"_id": place_id(key, seq), "key": key, "record_id": f"o{n}", "seq": seq,
                     "start": str(seq - 1), "end": str(seq)})  # fmt: skip
        if len(docs) == 5000:
            await db[CLAIMS].insert_many(docs, ordered=False)
            docs = []
    if docs:
        await db[CLAIMS].insert_many(docs, ordered=False)


async def run(url: str, places: int, rounds: int) -> dict[str, list[float]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    name = f"bench_tiers_{uuid.uuid4().hex[:8]}"
    db = client[name]
    try:
        await fill(db, places - BATCH)
        catalog = InMemoryPricingCatalog({"AWS:111": customer()})
        kept = MongoRatedStore(db)
        batch = [usage(n) for n in range(BATCH)]
        first = await rate_batch(batch, catalog, MongoTierStore(db), kept)
        assert not first.failures
        expected = [(e.data.charge_id, e.data.price) for _, e in first.charges]
        times: dict[str, list[float]] = {"per-pair": [], "$in": []}
        for _ in range(rounds):
            for label, store in (("$in", InQueryTierStore), ("per-pair", MongoTierStore)):
                start = time.perf_counter()
                again = await rate_batch(batch, catalog, store(db), kept)
                times[label].append(time.perf_counter() - start)
                assert [(e.data.charge_id, e.data.price) for _, e in again.charges] == expected
        return times
    finally:
        await client.drop_database(name)
        await client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongodb-url", default=os.environ.get("MONGODB_URL"))
    parser.add_argument("--places", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not args.mongodb_url:
        parser.error("--mongodb-url or MONGODB_URL is needed")
    for places in args.places:
        times = await run(args.mongodb_url, places, args.rounds)
        row = "  ".join(
            f"{label} median {statistics.median(t):.2f} s ({', '.join(f'{x:.2f}' for x in t)})"
            for label, t in times.items()
        )
        print(f"{places:>7} places, redelivered {BATCH}-record batch: {row}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
