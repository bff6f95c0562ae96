"""``billing reconcile`` reads each collection once, whatever the number of records (real
database): on FerretDB over SQLite every filter but ``_id`` equality reads the whole collection,
so a query per record would cost a scan per record."""

from __future__ import annotations

import zlib
from collections import Counter
from typing import Any

import orjson
import pytest
from bson import Binary
from pymongo import AsyncMongoClient
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from billing_cli.reconcile.domain import reconcile
from billing_cli.reconcile.service import read_sources
from billing_ingest.service.load_bill import pack_lines

pytestmark = pytest.mark.integration
PERIOD = "2024-09"
RECORDS = 30


class Reads(CommandListener):
    """Counts the read commands per collection."""

    def __init__(self) -> None:
        self.reads: Counter[str] = Counter()

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name in ("find", "aggregate"):
            self.reads[str(event.command[event.command_name])] += 1

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


def line(i: int) -> dict[str, Any]:
    return {"record_id": f"r{i}", "bill_id": "b1", "provider": "aws",
            "billing_account_id": "payer", "sub_account_id": f"a{i}", "currency": "USD",
            "billed_cost": "1", "billing_period": PERIOD}  # fmt: skip


async def test_each_collection_is_read_once(infra: Any, namespace: str) -> None:
    reads = Reads()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, event_listeners=[reads]
    )
    db = client[namespace]
    try:
        await db["ingest_bills"].insert_one(
            {"_id": "b1", "status": "processed", "file_name": "b.csv",
             "summary": {"billing_periods": [PERIOD]}, "rows_accepted": RECORDS,
             "rows_rejected": 0, "billed_cost_units": {"USD": RECORDS * 10**9}}
        )  # fmt: skip
        payloads = [orjson.dumps({"data": line(i)}) for i in range(RECORDS)]
        await db["ingest_bill_lines"].insert_one(
            {"_id": "b1:0", "bill_id": "b1", "chunk": 0, "ids": [f"r{i}" for i in range(RECORDS)],
             "payloads": Binary(pack_lines(payloads))}
        )  # fmt: skip
        kept = b"\n".join(b'1.1\t0\t{"record_id":"r%d"}' % i for i in range(RECORDS))
        await db["rating_records"].insert_one(
            {"_id": "x", "period": PERIOD, "customer_id": "c", "at": 1,
             "records": Binary(zlib.compress(kept))}
        )  # fmt: skip
        await db["invoicing_charges"].insert_many(
            [
                {"_id": f"r{i}", "customer_id": f"c{i}", "invoice_id": f"c{i}:{PERIOD}",
                 "period": PERIOD, "provider": "aws", "service_name": "EC2",
                 "cost_units": 10**9, "price_units": 11 * 10**8, "late": False}
                for i in range(RECORDS)
            ]
        )  # fmt: skip
        await db["invoicing_invoices"].insert_many(
            [
                {"_id": f"c{i}:{PERIOD}", "customer_id": f"c{i}", "period": PERIOD,
                 "status": "draft"}
                for i in range(RECORDS)
            ]
        )  # fmt: skip
        reads.reads.clear()
        sources = await read_sources(db, infra.kafka_bootstrap_servers, f"{namespace}.", PERIOD)
        assert len(sources.bills[0].lines) == len(sources.stored) == RECORDS
        assert len(sources.invoices) == len(sources.rated_prices) == RECORDS
        ledgers = reads.reads.pop("invoicing_draft_ledgers", 0)
        assert ledgers <= 16  # invoicing's readers look drafts up per ledger, at most 16
        collections = ["ingest_bills", "ingest_bill_lines", "ingest_rejections",
                       "ingest_reversals", "ingest_submitted_events", "rating_records",
                       "rating_corrections", "invoicing_charges", "invoicing_invoices"]  # fmt: skip
        assert dict(reads.reads) == dict.fromkeys(collections, 1)
        # nothing was published: every record is a difference, each named
        result = reconcile(sources)
        assert not result.reconciles
        missing = [d for d in result.unexplained if d.what == "lines never published"]
        assert [len(d.records) for d in missing] == [RECORDS]
    finally:
        await client.drop_database(namespace)
        await client.close()
