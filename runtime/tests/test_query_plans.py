"""Query plans: ``explain_query`` / ``assert_pushed_down`` tell a query the database filters from
one that reads the whole collection, on both FerretDB backends and in MongoDB's shapes.

The FerretDB cases run on real servers: the session's database (the shared local one is
FerretDB over SQLite), and a private FerretDB on each backend started for this module
(``billing_runtime.local_ferretdb``: a fresh SQLite folder, and a fresh PostgreSQL 15 cluster).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_runtime.local_ferretdb import (
    LocalFerretDB,
    LocalFerretDBError,
    missing_prerequisites,
)
from billing_runtime.mongo import (
    QueryPlan,
    assert_pushed_down,
    explain_aggregate,
    explain_query,
    query_plan,
)
from conftest import ROOT

Doc = dict[str, Any]
FERRETDB = ROOT / "var" / "bin" / "ferretdb"

# What each backend pushes down, as measured (docs/operations.md, "The database backend"):
# by query name -> filter pushed down. Sorts on a field are never pushed down by FerretDB v1.24.
HOT_QUERIES: dict[str, Doc] = {
    "_id equality": {"_id": "c-7"},
    "indexed field equality": {"invoice_id": "inv-1"},
    "$in on _id": {"_id": {"$in": ["c-1", "c-2"]}},
}
PUSHDOWN: dict[str, dict[str, bool]] = {
    "ferretdb-sqlite": {
        "_id equality": True,
        "indexed field equality": False,
        "$in on _id": False,
        "$match + $group": False,
    },
    "ferretdb-postgresql": {
        "_id equality": True,
        "indexed field equality": True,
        "$in on _id": False,
        "$match + $group": True,
    },
    "mongodb": {  # with the index on invoice_id: every one of them reads an index
        "_id equality": True,
        "indexed field equality": True,
        "$in on _id": True,
        "$match + $group": True,
    },
}
GROUP_PIPELINE: list[Doc] = [
    {"$match": {"invoice_id": "inv-1"}},
    {"$group": {"_id": "$invoice_id", "value": {"$sum": "$price_units"}}},
]


async def _charges(db: AsyncDatabase[Doc]) -> None:
    await db.charges.insert_many(
        [
            {"_id": f"c-{i}", "invoice_id": f"inv-{i % 4}", "price_units": i * 10**9}
            for i in range(40)
        ]
    )
    await db.charges.create_index("invoice_id")


async def _plans(db: AsyncDatabase[Doc]) -> dict[str, QueryPlan]:
    plans = {name: await explain_query(db.charges, f) for name, f in HOT_QUERIES.items()}
    plans["$match + $group"] = await explain_aggregate(db.charges, GROUP_PIPELINE)
    return plans


def _check_against_table(plans: dict[str, QueryPlan]) -> None:
    backend = plans["_id equality"].backend
    assert backend in PUSHDOWN, f"unknown backend {backend!r}"
    expected = PUSHDOWN[backend]
    assert {name: plan.filter_pushed_down for name, plan in plans.items()} == expected
    for name, plan in plans.items():
        assert plan.backend == backend
        assert plan.reads_whole_collection is not expected[name]
        if expected[name]:
            assert_pushed_down(plan, name)
        else:
            with pytest.raises(AssertionError, match="filter is not pushed down"):
                assert_pushed_down(plan, name)


@pytest.mark.integration
async def test_the_session_database_pushes_down_what_its_backend_does(
    mongo_db: AsyncDatabase[Doc],
) -> None:
    """On the shared local FerretDB (SQLite) only ``_id`` equality is pushed down."""
    await _charges(mongo_db)
    _check_against_table(await _plans(mongo_db))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def local_ferretdb(request: pytest.FixtureRequest) -> Iterator[LocalFerretDB]:
    """A private FerretDB on each backend (needs ``scripts/infra.sh build`` and PostgreSQL 15)."""
    backend: str = request.param
    missing = missing_prerequisites(FERRETDB, backend)
    if missing:
        pytest.fail(f"cannot start FerretDB over {backend}: {'; '.join(missing)}")
    directory = ROOT / "var" / "test-ferretdb" / f"{backend}-{uuid.uuid4().hex[:8]}"
    with LocalFerretDB(FERRETDB, directory, backend) as server:
        yield server


@pytest.fixture
async def local_db(local_ferretdb: LocalFerretDB) -> AsyncIterator[AsyncDatabase[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(local_ferretdb.url)
    try:
        yield client[f"t{uuid.uuid4().hex[:10]}"]
    finally:
        await client.close()


@pytest.mark.integration
async def test_each_ferretdb_backend_is_recognized_with_its_pushdowns(
    local_ferretdb: LocalFerretDB, local_db: AsyncDatabase[Doc]
) -> None:
    await _charges(local_db)
    plans = await _plans(local_db)
    assert plans["_id equality"].backend == f"ferretdb-{local_ferretdb.backend}"
    _check_against_table(plans)


@pytest.mark.integration
async def test_postgresql_reads_an_index_only_when_it_is_a_gin_index_on_the_field(
    local_ferretdb: LocalFerretDB, local_db: AsyncDatabase[Doc]
) -> None:
    """FerretDB's own indexes are B-trees on ``_jsonb -> 'field'``, but its pushed-down filter is
    ``_jsonb -> 'field' @> value``, which a B-tree cannot answer: PostgreSQL scans every row.
    A GIN index on the same expression, made in PostgreSQL directly, is read instead."""
    if local_ferretdb.backend != "postgresql":
        with pytest.raises(LocalFerretDBError, match="sqlite backend"):
            local_ferretdb.postgresql("SELECT 1")
        return
    # enough rows that reading 10 of them by index beats reading all (PostgreSQL's planner)
    await local_db.charges.insert_many(
        [{"_id": f"c-{i}", "invoice_id": f"inv-{i // 10}"} for i in range(5000)]
    )
    await local_db.charges.create_index("invoice_id")
    query = {"invoice_id": "inv-7"}
    before = await explain_query(local_db.charges, query)
    assert before.filter_pushed_down
    assert "Seq Scan" in json.dumps(before.backend_plan)
    assert "Index" not in json.dumps(before.backend_plan)

    table = local_ferretdb.postgresql(
        "SELECT tablename FROM pg_tables "
        f"WHERE schemaname = '{local_db.name}' AND tablename LIKE 'charges_%'"
    )
    local_ferretdb.postgresql(
        f'CREATE INDEX ON "{local_db.name}"."{table}" USING gin ((_jsonb -> \'invoice_id\'));'
        f'ANALYZE "{local_db.name}"."{table}"'
    )
    after = await explain_query(local_db.charges, query)
    assert "Bitmap Index Scan" in json.dumps(after.backend_plan)
    assert len(await local_db.charges.find(query).to_list()) == 10


@pytest.mark.integration
async def test_ferretdb_sorts_in_memory_whatever_the_backend(
    local_db: AsyncDatabase[Doc],
) -> None:
    """FerretDB v1.24 pushes a sort down only for ``$natural`` on a capped collection."""
    await _charges(local_db)
    await local_db.charges.create_index([("invoice_id", 1), ("price_units", 1)])
    plan = await explain_query(local_db.charges, {"_id": "c-7"}, sort={"price_units": 1})
    assert plan.filter_pushed_down
    assert plan.sort_pushed_down is False
    with pytest.raises(AssertionError, match="sort is not pushed down"):
        assert_pushed_down(plan, "sorted lookup")
    unsorted = await explain_query(local_db.charges, {"_id": "c-7"})
    assert unsorted.sort_pushed_down is None


@pytest.mark.integration
async def test_ferretdb_computes_only_the_first_group_accumulator_on_either_backend(
    local_db: AsyncDatabase[Doc],
) -> None:
    """Why ``sum_by`` runs one aggregation per sum: the second and later ``$sum`` of a ``$group``
    come back 0 on both backends of FerretDB v1.24 (when this fails, FerretDB was fixed)."""
    await local_db.lines.insert_many([{"k": "a", "p": 5, "q": 7}, {"k": "a", "p": 1, "q": 2}])
    cursor = await local_db.lines.aggregate(
        [{"$group": {"_id": "$k", "p": {"$sum": "$p"}, "q": {"$sum": "$q"}, "n": {"$sum": 1}}}]
    )
    assert await cursor.to_list() == [{"_id": "a", "p": 6, "q": 0, "n": 0}]


# MongoDB's explain shapes (MongoDB manual, "Explain Results"): the classic engine's stage tree,
# the slot-based engine's tree under winningPlan.queryPlan, and an aggregation whose first stage
# is the find layer ($cursor).


def _mongodb_find(winning_plan: Doc) -> Doc:
    return {
        "explainVersion": "1",
        "queryPlanner": {
            "namespace": "db.charges",
            "parsedQuery": {"invoice_id": {"$eq": "inv-1"}},
            "winningPlan": winning_plan,
            "rejectedPlans": [{"stage": "COLLSCAN"}],
        },
        "serverInfo": {"version": "8.0.4"},
        "ok": 1.0,
    }


IXSCAN = {"stage": "IXSCAN", "keyPattern": {"invoice_id": 1}, "indexName": "invoice_id_1"}


def test_mongodb_index_scan_is_pushed_down() -> None:
    plan = query_plan(_mongodb_find({"stage": "FETCH", "inputStage": IXSCAN}), sorted_query=False)
    assert plan == QueryPlan("mongodb", True, None, {"stage": "FETCH", "inputStage": IXSCAN})
    assert_pushed_down(plan)


def test_mongodb_collection_scan_is_not_pushed_down_and_a_sort_stage_is_in_memory() -> None:
    winning = {
        "stage": "SORT",
        "sortPattern": {"price_units": 1},
        "inputStage": {"stage": "COLLSCAN", "filter": {"invoice_id": {"$eq": "inv-1"}}},
    }
    plan = query_plan(_mongodb_find(winning), sorted_query=True)
    assert (plan.filter_pushed_down, plan.sort_pushed_down) == (False, False)
    assert plan.reads_whole_collection
    with pytest.raises(AssertionError, match=r"filter is not pushed down.*sort is not pushed"):
        assert_pushed_down(plan)


def test_mongodb_slot_based_engine_and_express_id_lookup() -> None:
    sbe = {"queryPlan": {"stage": "FETCH", "inputStage": IXSCAN}, "slotBasedPlan": {"stages": ""}}
    assert query_plan(_mongodb_find(sbe), sorted_query=True).sort_pushed_down is True
    express = {"stage": "EXPRESS_IXSCAN", "keyPattern": "{ _id: 1 }"}
    assert query_plan(_mongodb_find(express), sorted_query=False).filter_pushed_down


def test_mongodb_aggregation_reads_the_plan_of_its_cursor_stage() -> None:
    explained = {
        "explainVersion": "1",
        "stages": [
            {"$cursor": _mongodb_find({"stage": "COLLSCAN"})},
            {"$group": {"_id": "$invoice_id", "value": {"$sum": "$price_units"}}},
        ],
        "ok": 1.0,
    }
    plan = query_plan(explained, sorted_query=False)
    assert plan.backend == "mongodb"
    assert not plan.filter_pushed_down


def test_an_answer_that_is_no_plan_is_an_error() -> None:
    with pytest.raises(ValueError, match="neither a FerretDB nor a MongoDB"):
        query_plan({"ok": 1.0}, sorted_query=False)
