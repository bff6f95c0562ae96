"""An interrupted download must not restate a bill, and an earlier version loaded again
restores what it says (real broker and database).

The bills are FOCUS 1.0 CSV files of one scope (AWS, billing account 111, 2024-09), five
lines A-E of 1.00 to 5.00 USD = 15.00.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from billing_devtools.testing import TopicReader
from billing_ingest.adapters.bill_registry import MongoBillRegistry
from billing_ingest.adapters.memory import InMemoryBillRegistry, InMemoryUsagePublisher
from billing_ingest.adapters.publisher import KafkaUsagePublisher, ingest_topics
from billing_ingest.adapters.readers import cut_line
from billing_ingest.service.load_bill import CutFileError, LoadResult, load_bill
from billing_runtime.kafka import EventPublisher, ensure_topics
from billing_schemas.topics import Topic, topic_name

HEADER = (
    "BilledCost,BillingAccountId,BillingCurrency,BillingPeriodStart,ChargeCategory,"
    "ChargePeriodStart,ChargePeriodEnd,ProviderName,ServiceName,SubAccountId,ResourceId\n"
)


def line(resource: str, cost: str) -> str:
    return (
        f"{cost},111,USD,2024-09-01 00:00:00,Usage,2024-09-02 00:00:00,2024-09-02 01:00:00,"
        f"AWS,EC2,S1,{resource}\n"
    )


FIVE = HEADER + "".join(line(r, f"{i}.00") for i, r in enumerate("ABCDE", start=1))


def test_a_cut_last_line_is_found_in_plain_and_compressed_files(tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole.csv", tmp_path / "cut.csv"
    whole.write_text(FIVE)
    cut.write_text(FIVE[: FIVE.index("2.00,111") + 12])  # inside line 3 (B)
    assert cut_line(whole) is None
    assert cut_line(cut) == 3
    packed = tmp_path / "cut.csv.gz"
    data = gzip.compress(FIVE.encode() * 200)
    packed.write_bytes(data[: len(data) // 2])  # a compressed stream that stops early
    assert cut_line(packed) is not None
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(FIVE.replace("\n", "\r\n").encode())
    assert cut_line(crlf) is None


@pytest.mark.integration
async def test_a_cut_file_does_not_restate_and_the_intact_file_restores_its_version(
    infra: Any, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    ns = f"{namespace}."
    await ensure_topics(infra.kafka_bootstrap_servers, ingest_topics(ns))
    registry = MongoBillRegistry(mongo_db)
    await registry.ensure_indexes()
    producer = EventPublisher(infra.kafka_bootstrap_servers, "test-interrupted")
    await producer.start()
    publisher = KafkaUsagePublisher(producer, ns)

    async def load(path: Path) -> LoadResult:
        return await load_bill(path, publisher=publisher, registry=registry, batch_rows=2)

    v1 = tmp_path / "sept.csv"
    v1.write_text(FIVE)
    cut = tmp_path / "sept-retry.csv"
    cut.write_text(FIVE[: FIVE.index("3.00,111") + 10])  # a download stopped inside line 4 (C)
    v2 = tmp_path / "sept-v2.csv"  # a real restatement: B changed, E dropped
    v2.write_text(
        HEADER + line("A", "1.00") + line("B", "2.50") + line("C", "3.00") + line("D", "4.00")
    )
    try:
        async with TopicReader(
            infra.kafka_bootstrap_servers, topic_name(Topic.USAGE_RECORDED, ns)
        ) as usage:
            first = await load(v1)
            await usage.wait_for(5)

            with pytest.raises(CutFileError) as refused:
                await load(cut)
            assert "sept-retry.csv: the file ends in the middle of line 4" in str(refused.value)
            assert f"would restate {first.summary.bill_id}" in str(refused.value)

            second = await load(v2)
            assert (second.summary.version, second.summary.corrections) == (2, 2)
            await usage.wait_for(5 + 1 + 2)  # B at 2.50; B's and E's reversals

            again = await load(v1)  # the intact first version, loaded once more
            assert not again.already_loaded
            assert (again.summary.version, again.summary.restates) == (3, second.summary.bill_id)
            records = [json.loads(r.value)["data"] for r in await usage.wait_for(8 + 3)]

            once_more = await load(v1)
            assert once_more.already_loaded
            assert once_more.summary == again.summary
    finally:
        await producer.stop()

    ids = [r["record_id"] for r in records]
    assert len(ids) == len(set(ids))
    net: dict[str, Decimal] = defaultdict(Decimal)
    for record in records:
        net[record["resource_id"]] += Decimal(record["billed_cost"])
    # v1 again, by hand: A 1 + B 2 + C 3 + D 4 + E 5; B at 2.50 taken back
    assert {k: v for k, v in net.items() if v} == {
        "A": Decimal("1.00"),
        "B": Decimal("2.00"),
        "C": Decimal("3.00"),
        "D": Decimal("4.00"),
        "E": Decimal("5.00"),
    }
    assert sum(net.values()) == Decimal("15.00")
    bills = {doc["_id"]: doc async for doc in mongo_db["ingest_bills"].find({})}
    refused_bill = next(doc for doc in bills.values() if doc["file_name"] == "sept-retry.csv")
    assert refused_bill["status"] == "failed"
    assert "line 4" in refused_bill["error"]


async def test_a_cut_first_version_is_loaded_and_the_intact_file_completes_it(
    tmp_path: Path,
) -> None:
    """Nothing to restate: the cut line is rejected, and the intact file, a restatement of
    the cut one, adds the missing lines."""
    publisher, registry = InMemoryUsagePublisher(), InMemoryBillRegistry()
    cut = tmp_path / "cut.csv"
    cut.write_text(FIVE[: FIVE.index("3.00,111") + 10])
    first = await load_bill(cut, publisher=publisher, registry=registry)
    assert (first.summary.rows_accepted, first.summary.rows_rejected) == (2, 1)
    whole = tmp_path / "whole.csv"
    whole.write_text(FIVE)
    second = await load_bill(whole, publisher=publisher, registry=registry)
    assert (second.summary.version, second.summary.rows_unchanged) == (2, 2)
    assert sum(e.data.billed_cost for _, e in publisher.usage_events) == Decimal("15.00")
