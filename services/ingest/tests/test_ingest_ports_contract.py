"""Ingest's storage ports, one contract each, run against the in-memory fake
(``adapters/memory.py``) and the MongoDB adapter: the bill registry (what loading and restating
a bill rely on), the accepted-events store, and the catalog's invoicing currencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.store import ACCOUNTS, CUSTOMERS
from billing_ingest.adapters.bill_registry import MongoBillRegistry
from billing_ingest.adapters.catalog_currency import MongoCatalogCurrencies
from billing_ingest.adapters.memory import (
    InMemoryBillRegistry,
    InMemoryCatalogCurrencies,
    InMemorySubmittedEvents,
)
from billing_ingest.adapters.submitted_events import MongoSubmittedEvents
from billing_ingest.ports import BillRegistry, CatalogCurrencies, PreviousBill, SubmittedEvents
from billing_schemas.events import BillSummary

if TYPE_CHECKING:
    from conftest import Infra

BACKENDS = ["memory", pytest.param("mongo", marks=pytest.mark.integration)]


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


def summary(bill_id: str, version: int, restates: str | None = None) -> BillSummary:
    return BillSummary(
        bill_id=bill_id,
        file_name=f"{bill_id}.csv",
        checksum_sha256=bill_id[0] * 64,
        format="focus-1.0",
        status="processed",
        billing_periods=["2024-09"],
        rows_read=2,
        rows_accepted=2,
        rows_rejected=0,
        billed_cost_totals={"USD": Decimal("3.50")},
        scope=["AWS|111|2024-09"],
        version=version,
        restates=restates,
    )


@pytest.fixture(params=BACKENDS)
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[BillRegistry]:
    if request.param == "memory":
        yield InMemoryBillRegistry()
        return
    async with own_database(request) as db:
        mongo = MongoBillRegistry(db)
        await mongo.ensure_indexes()
        yield mongo


async def test_a_bill_is_processed_once_finished_and_found_as_the_chains_latest_version(
    registry: BillRegistry,
) -> None:
    first = summary("b1", 1)
    await registry.begin(bill_id="b1", file_name="b1.csv", checksum="b" * 64, fmt="focus-1.0")
    assert await registry.processed("b1") is None, "begun is not processed"
    await registry.finish(first, chain="b1")
    assert await registry.processed("b1") == first
    assert await registry.previous_version("AWS|111|2024-09", exclude="b2") == PreviousBill(
        "b1", 1, "b1", ["AWS|111|2024-09"]
    )
    assert await registry.previous_version("AWS|111|2024-09", exclude="b1") is None
    assert await registry.previous_version("GCP|9|2024-09", exclude="b2") is None

    second = summary("b2", 2, restates="b1")
    await registry.begin(bill_id="b2", file_name="b2.csv", checksum="c" * 64, fmt="focus-1.0")
    await registry.finish(second, chain="b1")
    assert await registry.latest_in_chain("b1") == second
    assert await registry.latest_in_chain("b2") == second
    assert await registry.latest_in_chain("unknown") is None
    previous = await registry.previous_version("AWS|111|2024-09", exclude="b3")
    assert previous is not None
    assert (previous.bill_id, previous.version, previous.chain) == ("b2", 2, "b1")


async def test_a_failed_load_is_not_processed(registry: BillRegistry) -> None:
    await registry.begin(bill_id="b1", file_name="b1.csv", checksum="b" * 64, fmt="focus-1.0")
    await registry.fail("b1", "broker down")
    assert await registry.processed("b1") is None


async def test_line_chunks_are_kept_once_and_read_back_in_order(registry: BillRegistry) -> None:
    await registry.add_lines("b1", 1, ["r3"], b"three")
    await registry.add_lines("b1", 0, ["r1", "r2"], b"one two")
    await registry.add_lines("b1", 1, ["r9"], b"a crashed run's copy")  # kept as first written
    await registry.add_lines("b2", 0, ["x"], b"another bill")
    assert [chunk async for chunk in registry.lines("b1")] == [
        (["r1", "r2"], b"one two"),
        (["r3"], b"three"),
    ]
    assert await registry.line_ids("b1") == {"r1", "r2", "r3"}
    assert await registry.line_ids("unknown") == set()


async def test_reversed_ids_are_kept_per_chain_once(registry: BillRegistry) -> None:
    await registry.add_reversed("c1", "b2", ["r1", "r2"])
    await registry.add_reversed("c1", "b2", ["r2", "r3"])  # partly an earlier, crashed run's
    await registry.add_reversed("c2", "b7", ["x"])
    await registry.add_reversed("c1", "b2", [])
    assert await registry.reversed_ids("c1") == {"r1", "r2", "r3"}
    assert await registry.reversed_ids("c3") == set()


@pytest.fixture(params=BACKENDS)
async def submitted(request: pytest.FixtureRequest) -> AsyncIterator[SubmittedEvents]:
    if request.param == "memory":
        yield InMemorySubmittedEvents()
        return
    async with own_database(request) as db:
        yield MongoSubmittedEvents(db)


async def test_the_first_claim_of_a_record_id_wins_and_later_ones_see_its_fingerprint(
    submitted: SubmittedEvents,
) -> None:
    assert await submitted.claim({}) == {}
    assert await submitted.claim({"r1": "f1", "r2": "f2"}) == {}
    assert await submitted.claim({"r1": "f1", "r2": "other", "r3": "f3"}) == {
        "r1": "f1",
        "r2": "f2",
    }
    assert await submitted.claim({"r3": "again"}) == {"r3": "f3"}


@pytest.fixture(params=BACKENDS)
async def currencies(request: pytest.FixtureRequest) -> AsyncIterator[CatalogCurrencies]:
    owners = {"AWS": {"acme": "USD", "globex": "EUR"}, "OpenStack": {"acme": "USD"}}
    if request.param == "memory":
        yield InMemoryCatalogCurrencies(
            {provider: set(by.values()) for provider, by in owners.items()}
        )
        return
    async with own_database(request) as db:
        await db[CUSTOMERS].insert_many(
            [{"_id": "acme", "currency": "USD"}, {"_id": "globex", "currency": "EUR"}]
        )
        await db[ACCOUNTS].insert_many(
            [
                {"_id": f"{provider}:{customer}-1", "provider": provider, "customer_id": customer}
                for provider, by in owners.items()
                for customer in by
            ]
        )
        yield MongoCatalogCurrencies(db)


async def test_a_providers_currencies_are_those_of_the_customers_owning_its_accounts(
    currencies: CatalogCurrencies,
) -> None:
    assert await currencies.invoicing_currencies("AWS") == {"USD", "EUR"}
    assert await currencies.invoicing_currencies("OpenStack") == {"USD"}
    assert await currencies.invoicing_currencies("Azure") == set()
