"""Notify's read ports, one contract each, run against the in-memory fake
(``adapters/memory.py``) and the MongoDB adapter: the catalog's customers and invoicing
entities, the last reconciliation verdicts. (The delivery log has its own,
``test_notify_delivery_log.py``; the invoice PDFs, read through invoicing's API, theirs in
``tests/test_invoice_documents_contract.py``, against invoicing's real app.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import (
    Address,
    Contact,
    ContactRole,
    Customer,
    InvoicingEntity,
    PriceList,
)
from billing_catalog.store import CUSTOMERS, INVOICING_ENTITIES
from billing_notify.adapters.catalog import MongoCustomerDirectory
from billing_notify.adapters.memory import (
    InMemoryCustomerDirectory,
    InMemoryReconciliations,
)
from billing_notify.adapters.reconciliations import MongoReconciliations
from billing_notify.domain.bill_report import Verdict
from billing_notify.ports import CustomerDirectory, Reconciliations

if TYPE_CHECKING:
    from conftest import Infra

BACKENDS = ["memory", pytest.param("mongo", marks=pytest.mark.integration)]
CUSTOMER = Customer(
    id="acme",
    name="Acme Corp",
    address=Address(lines=["1 Main St", "Springfield"], country="US"),
    currency="USD",
    invoicing_entity="cumulus",
    price_list=PriceList(id="std"),
    contacts=[Contact(email="ap@acme.example", roles=[ContactRole.BILLING], primary=True)],
)
ENTITY = InvoicingEntity(
    id="cumulus",
    name="Cumulus Cloud GmbH",
    address=Address(lines=["Wolkenweg 1", "Berlin"], country="DE"),
    number_prefix="CUM-",
    email="billing@cumulus.example",
)
CHECKED = datetime(2024, 10, 2, 8, 0, tzinfo=UTC)


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


@pytest.fixture(params=BACKENDS)
async def directory(request: pytest.FixtureRequest) -> AsyncIterator[CustomerDirectory]:
    if request.param == "memory":
        yield InMemoryCustomerDirectory(CUSTOMER, entities=(ENTITY,))
        return
    async with own_database(request) as db:
        await db[CUSTOMERS].insert_one({"_id": CUSTOMER.id, **CUSTOMER.model_dump(mode="json")})
        entity = {"_id": ENTITY.id, **ENTITY.model_dump(mode="json")}
        await db[INVOICING_ENTITIES].insert_one(entity)
        yield MongoCustomerDirectory(db)


async def test_the_directory_answers_customers_and_entities_by_id(
    directory: CustomerDirectory,
) -> None:
    assert await directory.customer("acme") == CUSTOMER
    assert await directory.customer("globex") is None
    assert await directory.invoicing_entity("cumulus") == ENTITY
    assert await directory.invoicing_entity("nimbus") is None


@pytest.fixture(params=BACKENDS)
async def reconciliations(request: pytest.FixtureRequest) -> AsyncIterator[Reconciliations]:
    verdicts = {
        "2024-09": Verdict("2024-09", reconciles=True, unexplained=0, checked_at=CHECKED),
        "2024-10": Verdict("2024-10", reconciles=False, unexplained=3, checked_at=CHECKED),
    }
    if request.param == "memory":
        kept: Reconciliations = InMemoryReconciliations()
        for verdict in verdicts.values():
            assert await kept.keep(verdict)
        yield kept
        return
    async with own_database(request) as db:
        kept = MongoReconciliations(db)
        for verdict in verdicts.values():
            assert await kept.keep(verdict)
        yield kept


async def test_the_last_verdict_of_each_period_reconciled_and_none_for_the_others(
    reconciliations: Reconciliations,
) -> None:
    found = await reconciliations.verdicts(["2024-10", "2024-08", "2024-09", "2024-10"])
    assert found == {
        "2024-09": Verdict("2024-09", reconciles=True, unexplained=0, checked_at=CHECKED),
        "2024-10": Verdict("2024-10", reconciles=False, unexplained=3, checked_at=CHECKED),
    }
    assert await reconciliations.verdicts([]) == {}


async def test_a_verdict_replaces_the_kept_one_only_if_checked_later(
    reconciliations: Reconciliations,
) -> None:
    later = Verdict("2024-10", reconciles=True, unexplained=0, checked_at=CHECKED + timedelta(1))
    earlier = Verdict("2024-10", reconciles=True, unexplained=0, checked_at=CHECKED - timedelta(1))
    same_time = Verdict("2024-10", reconciles=True, unexplained=0, checked_at=CHECKED)
    # older, or as old (a redelivery): the kept verdict stays
    assert not await reconciliations.keep(earlier)
    assert not await reconciliations.keep(same_time)
    assert (await reconciliations.verdicts(["2024-10"]))["2024-10"].unexplained == 3
    # later: it replaces it, and an older one arriving after it changes nothing
    assert await reconciliations.keep(later)
    assert not await reconciliations.keep(earlier)
    assert not await reconciliations.keep(later)
    assert await reconciliations.verdicts(["2024-10", "2024-11"]) == {"2024-10": later}
