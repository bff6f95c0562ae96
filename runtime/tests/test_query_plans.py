"""Query plans: ``explain_query`` / ``assert_pushed_down`` tell a query the database filters from
one that reads the whole collection, on both FerretDB backends and in MongoDB's shapes.

The FerretDB cases run on real servers: the session's database (the local stack's FerretDB,
over PostgreSQL by default, over SQLite with ``BILLING_FERRETDB_BACKEND=sqlite``), and a
private FerretDB on each backend started for this module (``billing_runtime.local_ferretdb``: a
fresh SQLite folder, and a fresh PostgreSQL 15 cluster with the GIN twins).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_runtime.local_ferretdb import (
    GIN_TWINS_SQL,
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
    """Whatever the session's database is, it pushes down what its backend does (on SQLite only
    ``_id`` equality)."""
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


def _pg_indexes(server: LocalFerretDB, schema: str) -> dict[str, str]:
    """Index name -> definition, for the collections of one FerretDB database (a schema)."""
    rows = server.postgresql(
        f"SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = '{schema}' "
        "AND tablename NOT LIKE '\\_ferretdb\\_%' ORDER BY indexname"
    )
    return dict(row.split("|", 1) for row in rows.splitlines())


def _index_read(plan: QueryPlan) -> str | None:
    """The index PostgreSQL's plan reads (a Bitmap Index Scan's), None for a sequential scan."""
    text = json.dumps(plan.backend_plan)
    if "Bitmap Index Scan" not in text:
        assert "Seq Scan" in text, text
        return None
    found = re.search(r'"Index Name": "([^"]+)"', text)
    assert found, text
    return found.group(1)


@pytest.mark.integration
async def test_postgresql_gives_every_ferretdb_index_a_gin_twin_that_lookups_read(
    local_ferretdb: LocalFerretDB, local_db: AsyncDatabase[Doc]
) -> None:
    """FerretDB's indexes are B-trees on ``_jsonb -> 'field'``; its pushed-down filter is
    ``_jsonb -> 'field' @> value``, which a B-tree cannot answer. The event trigger installed
    with the cluster (``postgres_gin_twins.sql``) gives each of them, the ``_id`` index of every
    collection included, a GIN twin on the same expressions (fastupdate off), which is read."""
    if local_ferretdb.backend != "postgresql":
        with pytest.raises(LocalFerretDBError, match="sqlite backend"):
            local_ferretdb.postgresql("SELECT 1")
        return
    # enough rows that reading 10 of them by index beats reading all (PostgreSQL's planner)
    await local_db.charges.insert_many(
        [{"_id": f"c-{i}", "invoice_id": f"inv-{i // 10}", "n": i} for i in range(5000)]
    )
    await local_db.charges.create_index("invoice_id")
    await local_db.charges.create_index([("invoice_id", 1), ("n", -1)], name="by_invoice_n")
    local_ferretdb.postgresql("ANALYZE")

    indexes = _pg_indexes(local_ferretdb, local_db.name)
    btrees = {name: d for name, d in indexes.items() if "USING btree" in d}
    twins = {name: d for name, d in indexes.items() if "USING gin" in d}
    assert len(btrees) == 3  # _id, invoice_id, (invoice_id, n)
    assert len(twins) == len(btrees)
    for name, definition in btrees.items():
        twin = twins[f"{name}_gin"]
        expressions = definition.split("USING btree ", 1)[1].replace(" DESC", "")
        assert twin.split("USING gin ", 1)[1] == f"{expressions} WITH (fastupdate=off)"
        assert "UNIQUE" not in twin

    id_plan = await explain_query(local_db.charges, {"_id": "c-7"})
    field_plan = await explain_query(local_db.charges, {"invoice_id": "inv-7"})
    group_plan = await explain_aggregate(local_db.charges, GROUP_PIPELINE)
    for plan, field in ((id_plan, "_id"), (field_plan, "invoice_id"), (group_plan, "invoice_id")):
        index = _index_read(plan)
        assert index in twins, plan.backend_plan
        assert f"((_jsonb -> '{field}'::text))" in twins[index]
    assert [d["n"] for d in await local_db.charges.find({"_id": "c-7"}).to_list()] == [7]
    found = await local_db.charges.find({"invoice_id": "inv-7"}).to_list()
    assert sorted(d["n"] for d in found) == list(range(70, 80))

    # dropping FerretDB's index drops its twin; without a twin PostgreSQL scans again
    await local_db.charges.drop_index("by_invoice_n")
    await local_db.charges.drop_index("invoice_id_1")
    assert len(_pg_indexes(local_ferretdb, local_db.name)) == 2  # _id and its twin
    assert _index_read(await explain_query(local_db.charges, {"invoice_id": "inv-7"})) is None


@pytest.mark.integration
async def test_postgresql_gin_twins_install_again_and_catch_up_on_indexes_made_without_them(
    local_ferretdb: LocalFerretDB, local_db: AsyncDatabase[Doc]
) -> None:
    """``scripts/infra.sh`` runs the script at every start: on a cluster made before it (or with
    its trigger gone) the indexes already there get their twins."""
    if local_ferretdb.backend != "postgresql":
        return
    script = GIN_TWINS_SQL.read_text()
    local_ferretdb.postgresql(
        "DROP EVENT TRIGGER billing_gin_twins_on_create; "
        "DROP EVENT TRIGGER billing_gin_twins_on_drop"
    )
    try:
        await local_db.items.insert_one({"_id": "a", "sku": "s-1"})
        await local_db.items.create_index("sku")
        before = _pg_indexes(local_ferretdb, local_db.name)
        assert [d for d in before.values() if "USING gin" in d] == []
    finally:
        local_ferretdb.postgresql_script(script)
    local_ferretdb.postgresql_script(script)  # twice: idempotent
    after = _pg_indexes(local_ferretdb, local_db.name)
    assert sorted(after) == sorted([*before, *(f"{name}_gin" for name in before)])


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
