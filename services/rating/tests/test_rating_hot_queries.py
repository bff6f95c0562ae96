"""Every query rating runs while it rates a batch, rates it again after a crash (a
redelivery) and rates a restated bill's reversals is answered by the database itself, never by
reading a growing collection whole.

The test records every command the stores send, then asks the database (``explain``) about
each read on the collections that grow with the month's usage: the tier places (one per
tiered record), the rated records and the corrections. FerretDB pushes down no ``$in`` (on
either backend): such a filter is read whole and filtered by FerretDB. On PostgreSQL an
equality is read from an index only when a field of the filter is indexed (its GIN twin), so
the test asks for that too (docs/operations.md, "The database backend")."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient
from rating_restatement_example import B2, RULES, A, B, C, events, pricing, reversal

from billing_rating.adapters.memory import InMemoryPricingCatalog
from billing_rating.adapters.rated_store import CORRECTIONS, RECORDS, MongoRatedStore
from billing_rating.adapters.tier_store import CLAIMS, MongoTierStore
from billing_rating.service.rate_batch import rate_batch
from billing_runtime.mongo import CommandRecorder, assert_pushed_down, explain_query

pytestmark = pytest.mark.integration

GROWING = {CLAIMS, RECORDS, CORRECTIONS}


def reads(commands: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, Any]]:
    """(command, collection, filter) of every read and update on a growing collection."""
    out = []
    for name, body in commands:
        collection = body.get(name)
        if not isinstance(collection, str) or collection not in GROWING:  # explain: a dict
            continue
        if name in ("find", "count", "delete"):
            out.append((name, collection, body.get("filter", body.get("query", {}))))
        elif name == "update":
            out.extend((name, collection, statement["q"]) for statement in body["updates"])
        elif name in ("aggregate", "distinct"):
            out.append((name, collection, "whole collection"))
    return out


async def test_rating_redelivery_and_reversals_read_no_growing_collection_whole(
    infra: Any, namespace: str
) -> None:
    recorder = CommandRecorder()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, event_listeners=[recorder]
    )
    db = client[namespace]
    try:
        catalog = InMemoryPricingCatalog({"AWS:111": pricing(RULES["graduated-quantity"])})
        kept = MongoRatedStore(db)
        first = await rate_batch(events([A, B, C]), catalog, MongoTierStore(db), kept)
        assert first.failures == []
        # redelivered after a crash: a new process, which knows no head, meets its own claims
        redelivered = await rate_batch(events([A, B, C]), catalog, MongoTierStore(db), kept)
        assert redelivered.failures == []
        assert [(e.data.charge_id, e.data.price) for _, e in redelivered.charges] == [
            (e.data.charge_id, e.data.price) for _, e in first.charges
        ]  # charged the same
        restated = [B2, reversal(B), reversal(C)]
        again = await rate_batch(events(restated), catalog, MongoTierStore(db), kept)
        assert again.failures == []

        seen = reads(recorder.commands)
        assert {collection for _, collection, _ in seen} >= {CLAIMS, RECORDS, CORRECTIONS}
        slow = [(n, c, q) for n, c, q in seen if q == "whole collection"]
        assert not slow, f"aggregations over a growing collection: {slow}"
        for name, collection, query in seen:
            plan = await explain_query(db[collection], query)
            assert_pushed_down(plan, f"{name} on {collection} {query}")
            if plan.backend == "ferretdb-postgresql":
                # pushed down is not enough there: PostgreSQL still reads every row unless a
                # field of the filter has an index (its GIN twin; docs/operations.md)
                indexes = await (await db[collection].list_indexes()).to_list()
                indexed = {key for index in indexes for key in index["key"]}
                assert indexed.intersection(query), f"{name} on {collection} {query}: no index"
        own_claims = [q for n, c, q in seen if n == "find" and c == CLAIMS and "record_id" in q]
        assert len(own_claims) >= 3  # the redelivered records' claims were read back, each alone
    finally:
        await client.drop_database(namespace)
        await client.close()
