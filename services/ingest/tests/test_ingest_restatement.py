"""Loading a bill twice, and restated versions of it, on the real broker and database.

What is published must add up to the latest version, with no record id twice: unchanged lines
are not sent again, changed and dropped lines are taken back by reversals, new lines are new
records, and a line that comes back after being reversed gets a new id.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from billing_devtools.testing import TopicReader
from billing_ingest.adapters.bill_registry import MongoBillRegistry
from billing_ingest.adapters.publisher import KafkaUsagePublisher, ingest_topics
from billing_ingest.service.load_bill import LoadResult, load_bill
from billing_runtime.kafka import EventPublisher, ensure_topics
from billing_schemas.topics import Topic, topic_name

pytestmark = pytest.mark.integration

HEADER = (
    "BilledCost,BillingAccountId,BillingCurrency,BillingPeriodStart,ChargeCategory,"
    "ChargePeriodStart,ChargePeriodEnd,ProviderName,ServiceName,SubAccountId,ResourceId\n"
)


def line(resource: str, cost: str, sub_account: str = "S1") -> str:
    return (
        f"{cost},111,USD,2024-09-01 00:00:00,Usage,2024-09-02 00:00:00,2024-09-02 01:00:00,"
        f"AWS,EC2,{sub_account},{resource}\n"
    )


def bill(path: Path, *lines: str) -> Path:
    path.write_text(HEADER + "".join(lines))
    return path


async def test_the_same_file_twice_and_restated_versions_publish_only_the_differences(
    infra: Any, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    ns = f"{namespace}."
    await ensure_topics(infra.kafka_bootstrap_servers, ingest_topics(ns))
    registry = MongoBillRegistry(mongo_db)
    await registry.ensure_indexes()
    producer = EventPublisher(infra.kafka_bootstrap_servers, "test-restatement")
    await producer.start()
    publisher = KafkaUsagePublisher(producer, ns)

    async def load(path: Path) -> LoadResult:
        return await load_bill(path, publisher=publisher, registry=registry, batch_rows=2)

    a, b, c, d = line("A", "1.00"), line("B", "2.00"), line("C", "3.00", "S2"), line("D", "4.00")
    b_restated, e = line("B", "2.50"), line("E", "5.00", "S2")
    try:
        async with TopicReader(
            infra.kafka_bootstrap_servers, topic_name(Topic.USAGE_RECORDED, ns)
        ) as usage:
            v1 = await load(bill(tmp_path / "v1.csv", a, b, c, d))
            assert (v1.summary.version, v1.summary.restates, v1.already_loaded) == (1, None, False)
            assert v1.summary.scope == ["AWS|111|2024-09"]
            await usage.wait_for(4)

            again = await load(tmp_path / "v1.csv")
            assert again.already_loaded
            assert again.summary == v1.summary

            # v2: A and D unchanged, B changed, C dropped, E new
            v2 = await load(bill(tmp_path / "v2.csv", a, b_restated, d, e))
            assert v2.summary.version == 2
            assert v2.summary.restates == v1.summary.bill_id
            assert (v2.summary.rows_accepted, v2.summary.rows_unchanged) == (4, 2)
            assert v2.summary.corrections == 2  # B's old line and C
            await usage.wait_for(4 + 4)

            # v3: C comes back, word for word as in v1
            v3 = await load(bill(tmp_path / "v3.csv", a, b_restated, d, e, c))
            assert (v3.summary.version, v3.summary.restates) == (3, v2.summary.bill_id)
            assert (v3.summary.rows_unchanged, v3.summary.corrections) == (4, 0)
            records = [json.loads(r.value)["data"] for r in await usage.wait_for(8 + 1)]
    finally:
        await producer.stop()

    ids = [r["record_id"] for r in records]
    assert len(ids) == len(set(ids)) == 9  # no record twice
    net: dict[str, Decimal] = defaultdict(Decimal)
    for record in records:
        net[record["sub_account_id"]] += Decimal(record["billed_cost"])
    # v3 by hand: S1 = A 1.00 + B 2.50 + D 4.00 = 7.50; S2 = E 5.00 + C 3.00 = 8.00
    assert dict(net) == {"S1": Decimal("7.50"), "S2": Decimal("8.00")}
    reversals = [r for r in records if r.get("charge_class") == "correction"]
    assert sorted(Decimal(r["billed_cost"]) for r in reversals) == [Decimal(-3), Decimal(-2)]
    assert {r["corrects_record_id"] for r in reversals} <= set(ids)
    comeback = records[-1]
    assert comeback["record_id"].endswith("~v3")
    assert comeback["resource_id"] == "C"
    bills = [doc async for doc in mongo_db["ingest_bills"].find({}, {"version": 1, "chain": 1})]
    assert sorted(doc["version"] for doc in bills) == [1, 2, 3]
    assert {doc["chain"] for doc in bills} == {v1.summary.bill_id}
