"""Benchmark: the CPU time of rating's handler path per record, without the broker or database.

``bench/rating_bench.py`` times the service on the broker, which on a loaded machine varies with
everything else running. This times only what the service does per record, in process CPU
time: decode each event (``USAGE_RECORDED.decode``), ``rate_batch`` over the in-memory ports,
pack the records as the rated store keeps them, and encode the charge events as the consumer
publishes them; N records (default 10,000) of ``rating_bench``'s workload in batches of 500,
after one warm-up pass, with the service's modules loaded and its collector settings.

To compare with another commit, run it once with that commit's sources first on the path::

    git archive <commit> | tar -x -C /tmp/base
    PYTHONPATH=$(ls -d /tmp/base/{services/*,runtime,schemas,catalog,cli,devtools}/src \
        | tr '\\n' :) .venv/bin/python bench/rating_handler_cpu.py --label base
    .venv/bin/python bench/rating_handler_cpu.py --label new

and alternate the two a few times. Prints one line; records nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from rating_bench import catalog_document, make_records

import billing_rating.app  # noqa: F401  # the service's imports, for a heap of its size
from billing_catalog.models import Catalog, account_key
from billing_rating.adapters.memory import (
    InMemoryPricingCatalog,
    InMemoryRatedStore,
    InMemoryTierStore,
)
from billing_rating.adapters.rated_store import _pack
from billing_rating.domain.rating import CustomerPricing
from billing_rating.entrypoints.consumers import _to_json
from billing_rating.ports import Unpriced
from billing_rating.service.rate_batch import rate_batch
from billing_schemas.channels import USAGE_RECORDED
from billing_schemas.events import ChargeRated, UsageRecorded

BATCH = 500


async def handler_pass(blobs: list[bytes], pricing: dict[str, CustomerPricing | Unpriced]) -> float:
    """Seconds of process CPU time for the handler's path over every message."""
    catalog = InMemoryPricingCatalog(pricing)
    tiers, kept = InMemoryTierStore(), InMemoryRatedStore()

    async def publish(charges: list[tuple[str, ChargeRated]]) -> None:
        for _, event in charges:
            _to_json(event)

    started = time.process_time()
    for start in range(0, len(blobs), BATCH):
        events = [USAGE_RECORDED.decode(b) for b in blobs[start : start + BATCH]]
        rated = await rate_batch(events, catalog, tiers, kept, publish)
        _pack([(e.data, c.data) for e, (_, c) in zip(events, rated.charges, strict=True)])
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    blobs = [
        UsageRecorded.create(r, source="bench", correlation_id="bench", event_id=r.record_id)
        .model_dump_json()
        .encode()
        for r in make_records(args.records, 0)
    ]
    catalog = Catalog.model_validate(catalog_document())
    [price_list] = catalog.price_lists
    pricing: dict[str, CustomerPricing | Unpriced] = {
        account_key(a.provider, a.account_id): CustomerPricing(c.id, c.currency, price_list)
        for c in catalog.customers
        for a in c.accounts
    }
    try:  # the service's collector settings, where the code has them
        from billing_runtime.heap import settle_heap
    except ImportError:
        pass
    else:
        settle_heap()
    asyncio.run(handler_pass(blobs, pricing))  # warm-up
    seconds = asyncio.run(handler_pass(blobs, pricing))
    print(f"{args.label} {1e6 * seconds / args.records:.1f} us a record".strip())


if __name__ == "__main__":
    main()
