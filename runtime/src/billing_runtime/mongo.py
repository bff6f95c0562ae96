"""MongoDB helpers that stay inside what both MongoDB and FerretDB v1 do correctly, and query
plans (``explain``) read the same way on both, so tests can catch a hot-path query that would
read a whole collection; and the client every service and ``billing`` command connects with
(here rather than beside the service class in ``billing_runtime.service``, so that a command
does not import FastStream to reach its database)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymongo import AsyncMongoClient, monitoring

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from billing_runtime.settings import ServiceSettings

Doc = dict[str, Any]


def make_mongo_client(url: str) -> AsyncMongoClient[Doc]:
    """An async MongoDB client (PyMongo's native async API) with timezone-aware datetimes."""
    return AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=10_000)


@asynccontextmanager
async def command_database(settings: ServiceSettings) -> AsyncIterator[AsyncDatabase[Doc]]:
    """The service's database for one command (``billing ...``); the client is closed after."""
    client = make_mongo_client(settings.mongodb_url)
    try:
        yield client[settings.mongodb_database]
    finally:
        await client.close()


async def sum_by(
    collection: AsyncCollection[Doc],
    match: Doc,
    keys: Sequence[str],
    fields: Sequence[str],
) -> dict[tuple[Any, ...], dict[str, int]]:
    """Exact integer sums of ``fields`` (plus ``"count"``) per distinct value of ``keys``.

    FerretDB v1.24 computes only the first accumulator of a ``$group`` stage and returns 0 for
    the others (seen here; see tests/integration of billing_runtime), so each sum runs as its own
    one-accumulator aggregation and the results are merged. ``$sum`` over integer fields is exact
    on both MongoDB and FerretDB.
    """
    group_id = {k: f"${k}" for k in keys}
    result: dict[tuple[Any, ...], dict[str, int]] = {}
    for name, expression in [("count", 1), *((f, f"${f}") for f in fields)]:
        cursor = await collection.aggregate(
            [{"$match": match}, {"$group": {"_id": group_id, "value": {"$sum": expression}}}]
        )
        async for row in cursor:
            key = tuple(row["_id"].get(k) for k in keys)
            result.setdefault(key, {})[name] = int(row["value"])
    return result


# --- Query plans: is a query's filter done by the database, or by reading every document? ---

MONGODB_SCAN_STAGE = "COLLSCAN"
MONGODB_SORT_STAGES = frozenset({"SORT", "SORT_KEY_GENERATOR"})


@dataclass(frozen=True)
class QueryPlan:
    """What ``explain`` says about one query, on FerretDB v1 or on MongoDB.

    ``filter_pushed_down``: the backend applies the filter, so only matching documents come back.
    FerretDB reports it as ``filterPushdown``; without it FerretDB reads *every* document of the
    collection and filters them itself (its SQLite backend pushes down only ``_id`` equality).
    On MongoDB, which always filters in its query engine, it means the winning plan reads an
    index (``IXSCAN``, ``EXPRESS_IXSCAN``, ``IDHACK``...) and has no ``COLLSCAN`` stage.

    ``sort_pushed_down``: the backend returns the documents in order. FerretDB v1.24 reports
    ``sortPushdown``, true only for ``$natural`` on capped collections: any other sort is done
    in memory over the (filtered) documents. On MongoDB: no blocking ``SORT`` stage in the plan.
    ``None`` when no sort was asked for.

    ``backend``: ``"ferretdb-sqlite"``, ``"ferretdb-postgresql"``, ``"ferretdb"`` (a FerretDB
    whose plan shape is neither) or ``"mongodb"``; ``backend_plan`` is the backend's own plan
    (SQLite's ``EXPLAIN QUERY PLAN`` rows, PostgreSQL's ``EXPLAIN`` JSON, MongoDB's winning plan).
    """

    backend: str
    filter_pushed_down: bool
    sort_pushed_down: bool | None
    backend_plan: Any = field(repr=False)

    @property
    def reads_whole_collection(self) -> bool:
        """True when the database hands every stored document to the filter step: the cost of
        the query then grows with the collection, not with the result."""
        return not self.filter_pushed_down


async def explain_query(
    collection: AsyncCollection[Doc],
    filter: Doc,
    sort: Doc | None = None,
) -> QueryPlan:
    """``explain`` of ``find(filter).sort(sort)`` on ``collection`` (nothing is executed)."""
    command: Doc = {"find": collection.name, "filter": filter}
    if sort:
        command["sort"] = sort
    explained = await collection.database.command("explain", command, verbosity="queryPlanner")
    return query_plan(explained, sorted_query=bool(sort))


async def explain_aggregate(collection: AsyncCollection[Doc], pipeline: Sequence[Doc]) -> QueryPlan:
    """``explain`` of an aggregation on ``collection``: FerretDB pushes down only the leading
    ``$match`` (and ``$sort``) stages; the plan tells whether it did."""
    command: Doc = {"aggregate": collection.name, "pipeline": list(pipeline), "cursor": {}}
    explained = await collection.database.command("explain", command, verbosity="queryPlanner")
    sorted_query = any("$sort" in stage for stage in pipeline)
    return query_plan(explained, sorted_query=sorted_query)


def query_plan(explained: Doc, *, sorted_query: bool) -> QueryPlan:
    """Read an ``explain`` answer of FerretDB v1 or of MongoDB (either query engine)."""
    if "filterPushdown" in explained:  # FerretDB v1
        backend_plan = explained.get("queryPlanner", {}).get("Plan")
        if isinstance(backend_plan, list):
            backend = "ferretdb-sqlite"  # EXPLAIN QUERY PLAN rows ("id=2 ... detail=SCAN t")
        elif isinstance(backend_plan, dict) and "Node Type" in backend_plan:
            backend = "ferretdb-postgresql"  # EXPLAIN (FORMAT JSON) of PostgreSQL
        else:
            backend = "ferretdb"
        return QueryPlan(
            backend=backend,
            filter_pushed_down=bool(explained["filterPushdown"]),
            sort_pushed_down=bool(explained.get("sortPushdown")) if sorted_query else None,
            backend_plan=backend_plan,
        )
    winning = _winning_plans(explained)
    if not winning:
        msg = f"neither a FerretDB nor a MongoDB explain answer: {sorted(explained)}"
        raise ValueError(msg)
    stages = [stage for plan in winning for stage in _stages(plan)]
    return QueryPlan(
        backend="mongodb",
        filter_pushed_down=MONGODB_SCAN_STAGE not in stages,
        sort_pushed_down=not MONGODB_SORT_STAGES.intersection(stages) if sorted_query else None,
        backend_plan=winning[0] if len(winning) == 1 else winning,
    )


def _winning_plans(explained: Any) -> list[Doc]:
    """Every ``winningPlan`` in an explain answer: at the top (find, or an aggregation MongoDB
    runs in its query engine) or inside ``stages[0].$cursor`` (the classic aggregation shape).
    The slot-based engine nests the stage tree under ``winningPlan.queryPlan``."""
    found: list[Doc] = []
    if isinstance(explained, dict):
        for key, value in explained.items():
            if key == "winningPlan" and isinstance(value, dict):
                found.append(value.get("queryPlan", value))
            elif key != "rejectedPlans":
                found += _winning_plans(value)
    elif isinstance(explained, list):
        for item in explained:
            found += _winning_plans(item)
    return found


def _stages(plan: Doc) -> list[str]:
    """Stage names of a MongoDB plan tree (``inputStage`` / ``inputStages``), root first."""
    names = [str(plan.get("stage", ""))]
    children = [plan["inputStage"]] if "inputStage" in plan else plan.get("inputStages", [])
    for child in children:
        names += _stages(child)
    return names


def assert_pushed_down(plan: QueryPlan, what: str = "query") -> None:
    """Fail (``AssertionError``) unless the database itself applies the filter, and the sort
    when one was asked for: a hot-path query must not read a growing collection whole."""
    problems = []
    if not plan.filter_pushed_down:
        problems.append("its filter is not pushed down (every document is read and filtered)")
    if plan.sort_pushed_down is False:
        problems.append("its sort is not pushed down (documents are sorted in memory)")
    if problems:
        msg = f"{what} on {plan.backend}: {'; '.join(problems)}; plan: {plan.backend_plan}"
        raise AssertionError(msg)


async def put_documents(collection: AsyncCollection[Doc], documents: Sequence[Doc]) -> int:
    """Make each document (by ``_id``) stored as given; return how many were written.

    New ones are inserted together; changed ones are replaced one at a time; unchanged ones are
    left alone. FerretDB v1.24 never answers a bulk write that changes about a hundred existing
    documents (update and replace statements alike, seen here), while it inserts in bulk
    cheaply, so writing only what differs keeps re-applying the same documents cheap and safe.
    """
    if not documents:
        return 0
    ids = [d["_id"] for d in documents]
    stored = {d["_id"]: d async for d in collection.find({"_id": {"$in": ids}})}
    new = [d for d in documents if d["_id"] not in stored]
    changed = [d for d in documents if d["_id"] in stored and stored[d["_id"]] != d]
    if new:
        await collection.insert_many(new, ordered=False)
    for document in changed:
        await collection.replace_one({"_id": document["_id"]}, document)
    return len(new) + len(changed)


NUL_STORED_AS = "\N{REPLACEMENT CHARACTER}"


def without_nul(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with U+0000 in its top-level strings replaced by U+FFFD.

    FerretDB over PostgreSQL stores documents as JSONB, which cannot hold U+0000 ("unsupported
    Unicode escape sequence"): one such character in a text the input carried (a bill's
    description, an event id) failed the whole batch's insert, again at every redelivery.
    """
    return {
        key: value.replace("\x00", NUL_STORED_AS) if isinstance(value, str) else value
        for key, value in doc.items()
    }


class CommandRecorder(monitoring.CommandListener):
    """Keeps every command a client sends (name and body): pass it in the client's
    ``event_listeners``, then check the filters of the hot paths with :func:`explain_query`."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        del event

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        del event
