"""Benchmark: FerretDB v1.24 over SQLite beside FerretDB over PostgreSQL, on invoicing's charges.

Run with ``make bench-db`` (it builds the FerretDB launcher if needed; PostgreSQL 15 comes from
Debian's ``/usr/lib/postgresql/15/bin``). For each backend a private FerretDB is started on a free
port (``billing_runtime.local_ferretdb``: a fresh SQLite folder, or a fresh PostgreSQL cluster),
so the shared local database is never touched. A third variant, ``postgresql+gin``, is the
PostgreSQL backend with the GIN twins of FerretDB's indexes (on ``_jsonb -> '_id'`` and
``_jsonb -> 'invoice_id'``, ``fastupdate`` off) that the event trigger of
``billing_runtime/postgres_gin_twins.sql`` makes, as on the local stack; ``postgresql`` is the
cluster without it (FerretDB's own indexes are B-trees its pushed-down filters never use).

One collection of documents shaped like invoicing's stored charges (``charge_document`` in
billing_invoicing.adapters.invoice_repo, plus a small nested ``totals`` document like those an
incrementally kept draft holds) with an index on ``invoice_id`` grows to each size (default
10,000, 50,000 and 200,000 documents); 50 charges per invoice, so every query below returns the
same number of documents at every size and only what the database reads grows. At each size:

- ``insert_many`` documents/s while growing: half the new documents in batches of 500, half in
  batches of 5,000;
- one query of each kind, repeated (different ids each time) until 20 runs or 2 s, median ms:
  ``find`` by ``_id``; ``find`` by ``invoice_id`` (indexed); the same sorted by
  ``charge_period_start``; ``$in`` on 50 ``_id``; ``update_one`` by ``_id`` with ``$set``; with
  ``$inc`` of two nested fields; ``aggregate`` ``$match`` on ``invoice_id`` + ``$group`` with one
  ``$sum``;
- each query's ``explain``: ``filterPushdown`` and ``sortPushdown``.

Results are appended to ``bench/results/db.jsonl`` and printed as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_results import record_result
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from billing_runtime.local_ferretdb import LocalFerretDB, missing_prerequisites
from billing_runtime.mongo import QueryPlan, explain_aggregate, explain_query

ROOT = Path(__file__).resolve().parents[1]
FERRETDB = ROOT / "var" / "bin" / "ferretdb"
CHARGES_PER_INVOICE = 50
MAX_RUNS = 20
RUN_SECONDS = 2.0
IN_IDS = 50
GIN_SUFFIX = "+gin"
Doc = dict[str, Any]


def charge(i: int) -> Doc:
    """Document ``i``: a stored rated charge (the fields of ``charge_document``), ids by index."""
    start = datetime(2024, 9, 1, tzinfo=UTC) + timedelta(hours=i % 720)
    price = 1_234_567_890 + i * 7
    return {
        "_id": f"rec-{i:09d}",
        "invoice_id": invoice_of(i),
        "customer_id": f"cust-{i // (CHARGES_PER_INVOICE * 10):05d}",
        "period": "2024-09",
        "provider": "AWS",
        "sub_account_id": f"acct-{i % 400:04d}",
        "service_name": "Amazon Elastic Compute Cloud",
        "sku_id": f"sku-{i % 97}",
        "description": "m5.large Linux on-demand hours",
        "region": "eu-west-1",
        "charge_category": "Usage",
        "line_type": "usage",
        "charge_period_start": start,
        "quantity": "1.000000",
        "unit": "Hours",
        "cost_units": price - 200_000_000,
        "cost_currency": "USD",
        "price_units": price,
        "margin_units": 200_000_000,
        "currency": "EUR",
        "savings_removed_units": 0,
        "fx_rate": "0.92",
        "basis": "list",
        "rule": "markup 10% compute",
        "price_list_id": "pl-default",
        "price_list_version": 3,
        "record_id": f"rec-{i:09d}",
        "late": False,
        "received_at": datetime.now(UTC),
        "totals": {"price_units": price, "count": 1},
    }


def invoice_of(i: int) -> str:
    return f"inv-{i // CHARGES_PER_INVOICE:07d}"


async def insert_rate(coll: AsyncCollection[Doc], first: int, stop: int, batch: int) -> float:
    """Insert documents ``first..stop`` in batches of ``batch``; documents/s."""
    began = time.perf_counter()
    for start in range(first, stop, batch):
        await coll.insert_many([charge(i) for i in range(start, min(stop, start + batch))])
    return (stop - first) / (time.perf_counter() - began)


async def median_ms(run: Callable[[int], Awaitable[object]], size: int, rng: random.Random) -> Doc:
    """Median milliseconds of ``run(random document index)`` over up to MAX_RUNS runs, stopping
    once RUN_SECONDS have been spent (a full scan of 200,000 documents takes tens of seconds)."""
    times: list[float] = []
    spent = 0.0
    while len(times) < MAX_RUNS and spent < RUN_SECONDS:
        began = time.perf_counter()
        await run(rng.randrange(size))
        took = time.perf_counter() - began
        times.append(took * 1000)
        spent += took
    return {"median_ms": round(statistics.median(times), 3), "runs": len(times)}


def pushdown(plan: QueryPlan) -> Doc:
    return {
        "filter_pushdown": plan.filter_pushed_down,
        "sort_pushdown": plan.sort_pushed_down,
        "backend_plan": plan_summary(plan.backend_plan),
    }


def plan_summary(backend_plan: Any) -> str:
    """SQLite's plan rows (``SCAN t`` / ``SEARCH t USING INDEX ...``) or PostgreSQL's node types."""
    if isinstance(backend_plan, list):
        return "; ".join(str(row).split("detail=", 1)[-1] for row in backend_plan)
    if isinstance(backend_plan, dict):
        node = backend_plan.get("Plan", backend_plan)
        names = [str(node.get("Node Type"))]
        names += [plan_summary(child) for child in node.get("Plans", [])]
        return " > ".join(names)
    return str(backend_plan)


async def measure_size(coll: AsyncCollection[Doc], size: int, rng: random.Random) -> Doc:
    """Time every query at the current ``size`` and explain each."""
    by_id = f"rec-{rng.randrange(size):09d}"
    some_invoice = invoice_of(rng.randrange(size))

    def ids_in(i: int) -> list[str]:
        return [f"rec-{(i + k * 997) % size:09d}" for k in range(IN_IDS)]

    def group(invoice: str) -> list[Doc]:
        return [
            {"$match": {"invoice_id": invoice}},
            {"$group": {"_id": "$invoice_id", "value": {"$sum": "$price_units"}}},
        ]

    sort = {"charge_period_start": 1}
    queries: dict[
        str, tuple[Callable[[int], Awaitable[object]], Callable[[], Awaitable[QueryPlan]]]
    ] = {
        "find _id": (
            lambda i: coll.find_one({"_id": f"rec-{i:09d}"}),
            lambda: explain_query(coll, {"_id": by_id}),
        ),
        "find invoice_id": (
            lambda i: coll.find({"invoice_id": invoice_of(i)}).to_list(),
            lambda: explain_query(coll, {"invoice_id": some_invoice}),
        ),
        "find invoice_id sorted": (
            lambda i: coll.find({"invoice_id": invoice_of(i)}).sort(sort).to_list(),
            lambda: explain_query(coll, {"invoice_id": some_invoice}, sort=sort),
        ),
        f"$in {IN_IDS} _id": (
            lambda i: coll.find({"_id": {"$in": ids_in(i)}}).to_list(),
            lambda: explain_query(coll, {"_id": {"$in": ids_in(0)}}),
        ),
        "update_one _id $set": (
            lambda i: coll.update_one(
                {"_id": f"rec-{i:09d}"}, {"$set": {"late": True, "rule": "re-rated"}}
            ),
            lambda: explain_query(coll, {"_id": by_id}),
        ),
        "update_one _id $inc nested": (
            lambda i: coll.update_one(
                {"_id": f"rec-{i:09d}"},
                {"$inc": {"totals.price_units": 1_000_000_000, "totals.count": 1}},
            ),
            lambda: explain_query(coll, {"_id": by_id}),
        ),
        "aggregate $match+$group": (
            lambda i: coll.aggregate(group(invoice_of(i))),
            lambda: explain_aggregate(coll, group(some_invoice)),
        ),
    }
    figures: Doc = {}
    for name, (run, explain) in queries.items():

        async def run_to_end(i: int, run: Callable[[int], Awaitable[object]] = run) -> None:
            result = await run(i)
            if hasattr(result, "to_list"):  # aggregate returns a cursor to drain
                await result.to_list()

        figures[name] = await median_ms(run_to_end, size, rng) | pushdown(await explain())
    return figures


def server_backend(backend: str) -> str:
    return backend.removesuffix(GIN_SUFFIX)


async def bench_backend(backend: str, sizes: list[int]) -> Doc:
    directory = ROOT / "var" / "bench-db" / f"{backend}-{uuid.uuid4().hex[:8]}"
    gin = backend.endswith(GIN_SUFFIX)
    with LocalFerretDB(FERRETDB, directory, server_backend(backend), gin_twins=gin) as server:
        client: AsyncMongoClient[Doc] = AsyncMongoClient(server.url, tz_aware=True)
        try:
            coll = client["bench"]["charges"]
            await coll.create_index("invoice_id")  # with +gin: its twin and _id's, by trigger
            rng = random.Random(11)
            stored = 0
            per_size: Doc = {}
            for size in sizes:
                half = stored + (size - stored) // 2
                rate_500 = await insert_rate(coll, stored, half, 500)
                rate_5000 = await insert_rate(coll, half, size, 5000)
                stored = size
                print(f"{backend}: {size} documents stored, timing the queries...", flush=True)
                per_size[str(size)] = {
                    "insert_many_500_docs_per_s": round(rate_500),
                    "insert_many_5000_docs_per_s": round(rate_5000),
                    "queries": await measure_size(coll, size, rng),
                }
            return per_size
        finally:
            await client.close()


def table(results: dict[str, Doc], sizes: list[int]) -> str:
    """One row per measurement, one column per backend and size (ms, or documents/s)."""
    columns = [(b, str(s)) for b in results for s in sizes]
    header = ["measure", *(f"{b} {int(s):,}" for b, s in columns)]
    rows = [
        [f"insert_many x{batch} (docs/s)"]
        + [f"{results[b][s][f'insert_many_{batch}_docs_per_s']:,}" for b, s in columns]
        for batch in (500, 5000)
    ]
    first = results[columns[0][0]][columns[0][1]]["queries"]
    for name in first:
        row = [f"{name} (ms)"]
        for b, s in columns:
            q = results[b][s]["queries"][name]
            flags = ("F" if q["filter_pushdown"] else "-") + (
                "" if q["sort_pushdown"] is None else "S" if q["sort_pushdown"] else "-"
            )
            row.append(f"{q['median_ms']:,.2f} [{flags}]")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    lines.append("[F] filter pushed down, [-] not; second flag: sort pushed down (sorted queries)")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10000,50000,200000")
    parser.add_argument(
        "--backends",
        default=f"sqlite,postgresql,postgresql{GIN_SUFFIX}",
        help=f"postgresql{GIN_SUFFIX}: PostgreSQL plus GIN indexes on _id and invoice_id",
    )
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    backends = args.backends.split(",")
    for backend in backends:
        missing = missing_prerequisites(FERRETDB, server_backend(backend))
        if missing:
            raise SystemExit(f"cannot run FerretDB over {backend}: {'; '.join(missing)}")
    results = {backend: await bench_backend(backend, sizes) for backend in backends}
    record_result(
        "db",
        {"ferretdb": "v1.24.2", "sizes": sizes, "charges_per_invoice": CHARGES_PER_INVOICE}
        | {"backends": results},
    )
    print(table(results, sizes))


def stop_on_sigterm(signum: int, frame: object) -> None:
    """``kill`` ends the run like Ctrl-C, so the private FerretDB and PostgreSQL are stopped."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    asyncio.run(main())
