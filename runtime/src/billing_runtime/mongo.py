"""MongoDB helpers that stay inside what both MongoDB and FerretDB v1 do correctly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

Doc = dict[str, Any]


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
