"""Re-rating a period after a mid-period price-list change, through the running rating and
invoicing services on the real broker and database, with the ``billing rate`` command.

Four usage records of customer acme in 2024-09 are rated under version 1 of its price list and
the period is closed (invoice finalized); then version 2 (effective from the 15th) is added and
``billing rate --period 2024-09`` publishes only the difference, which lands on the customer's
next open invoice; the finalized invoice does not change. Figures by hand in the comments.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from einvoice_check import validate_issued
from pymongo import AsyncMongoClient
from rating_rerating_example import V1, V2
from rating_rerating_example import usage as example_usage

from billing_devtools.testing import TopicReader, eventually, produce
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_runtime.lag import topic_partitions
from billing_schemas.events import (
    ChargeRated,
    UsageRecorded,
)
from billing_schemas.money import from_fixed_units
from billing_schemas.topics import Topic, topic_name

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

D = Decimal
PERIOD = "2024-09"


def catalog(*versions: dict[str, Any]) -> dict[str, Any]:
    return {
        "invoicing_entities": [
            {
                "id": "cumulus",
                "name": "Cumulus Cloud Resellers GmbH",
                "address": {
                    "lines": ["Wolkenstrasse 7", "10115 Berlin"],
                    "country": "DE",
                    "city": "Berlin",
                    "postal_code": "10115",
                },
                "vat_id": "DE123456788",
                # XRechnung needs the seller's telephone (BR-DE-6), Peppol both participant ids
                "phone": "+49 30 1234567",
                "peppol_participant_id": "9930:DE123456788",
                "number_prefix": "CCR-",
                "email": "billing@cumulus.example",
            }
        ],
        "price_lists": [{"id": "acme-list", "versions": list(versions)}],
        "customers": [
            {
                "id": "acme",
                "name": "Acme Corp",
                "address": {
                    "lines": ["1 Main Street"],
                    "country": "US",
                    "city": "Springfield",
                    "postal_code": "62701",
                },
                "peppol_participant_id": "0060:123456789",
                "currency": "USD",
                "invoicing_entity": "cumulus",
                "price_list": "acme-list",
                "contacts": [{"email": "ap@acme.example", "roles": ["Billing"]}],
                "accounts": [{"provider": "AWS", "account_id": "111"}],
            }
        ],
    }


def usage(rid: str, day: int, quantity: str, cost: str, service: str) -> bytes:
    record = example_usage(rid, day, quantity, cost, service)
    event = UsageRecorded.create(record, source="test", correlation_id="rerate-e2e")
    return event.model_dump_json().encode()


RECORDS = [
    usage("ec2-early", 3, "1", "100", "Amazon EC2"),  # v1: 100 x 1.10 = 110
    usage("s3-early", 4, "80", "4", "Amazon S3"),  # tiers: 80 x 0.10 = 8
    usage("ec2-late", 20, "1", "50", "Amazon EC2"),  # v1: 50 x 1.10 = 55; v2: 50 x 1.20 = 60
    usage("s3-late", 21, "40", "2", "Amazon S3"),  # tiers: 20 x 0.10 + 20 x 0.05 = 3
]


async def topic_size(servers: str, topic: str) -> int:
    """How many messages the topic holds (sum of its partitions' end offsets)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=servers)
    await admin.start()
    await consumer.start()
    try:
        partitions = await topic_partitions(admin, [topic])
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()
        await admin.close()


def charges_of(records: list[Any]) -> list[ChargeRated]:
    return [
        ChargeRated.model_validate_json(r.value)
        for r in records
        if dict(r.headers).get("event-type") == b"charge.rated"
    ]


async def test_a_mid_period_price_change_is_re_rated_into_corrections_on_the_next_invoice(
    pipeline: Any, tmp_path: Path
) -> None:
    servers, ns = pipeline.infra.kafka_bootstrap_servers, f"{pipeline.namespace}."
    charge_topic = topic_name(Topic.CHARGE_RATED, ns)
    before, after = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    before.write_text(yaml.safe_dump(catalog(V1)))
    after.write_text(yaml.safe_dump(catalog(V1, V2)))
    await pipeline.start("rating", "invoicing")
    await pipeline.billing("catalog", "apply", str(before))
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pipeline.infra.mongodb_url)
    db = client[pipeline.namespace]
    try:
        async with TopicReader(servers, charge_topic) as stream:
            # one key, one partition: rated in this order
            await produce(
                servers, topic_name(Topic.USAGE_RECORDED, ns), [(b"111", r) for r in RECORDS]
            )
            first = charges_of(await stream.wait_for(4))
        assert {c.data.charge_id: c.data.price for c in first} == {
            "ec2-early": D(110),
            "s3-early": D(8),
            "ec2-late": D(55),
            "s3-late": D(3),
        }

        async def stored(n: int) -> bool:
            return await db["invoicing_charges"].count_documents({}) == n

        await eventually(lambda: stored(4), "invoicing to store the 4 charges", 60)
        await pipeline.billing("invoices", "generate", "--period", PERIOD)
        finalized = await db["invoicing_invoices"].find_one({"_id": f"acme:{PERIOD}"})
        assert finalized is not None
        assert finalized["status"] == "finalized"
        # 110 + 8 + 55 + 3 = 176.00, no tax
        assert from_fixed_units(finalized["total_units"]) == D("176.00")

        await pipeline.billing("catalog", "apply", str(after))
        published_before = await topic_size(servers, charge_topic)  # 4 charges + 1 close marker
        assert published_before == 5

        out = await pipeline.billing("rate", "--period", PERIOD, "--dry-run")
        assert "4 records, 1 corrections would publish" in out
        assert "ec2-late:rerated:1" in out
        assert await topic_size(servers, charge_topic) == published_before  # a dry run

        out = await pipeline.billing("rate", "--period", PERIOD)
        assert "re-rated 2024-09 (all customers): 4 records, 1 corrections published" in out
        [difference] = re.findall(r"difference (\S+) USD", out)
        assert D(difference) == D(5)  # 60 - 55
        async with TopicReader(servers, charge_topic) as stream:
            everything = charges_of(await stream.wait_for(published_before + 1))
        [correction] = [c.data for c in everything if c.data.charge_id.endswith(":rerated:1")]
        assert len(everything) == 5  # the 4 charges and the one correction, nothing else
        assert (
            correction.charge_id,
            correction.record_id,
            correction.price,
            correction.cost,
            correction.price_list_version,
        ) == ("ec2-late:rerated:1", "ec2-late", D(5), D(0), 2)
        # the period now adds up to a fresh rating under v1+v2: 110 + 8 + 60 + 3 = 181
        assert sum((c.data.price for c in everything), D(0)) == D(181)
        # and its cost is counted once: 100 + 4 + 50 + 2 = 156
        assert sum((c.data.cost for c in everything), D(0)) == D(156)

        # invoicing: the finalized invoice is untouched; the correction is a late line of the
        # customer's next open invoice (2024-10, a draft)
        await eventually(lambda: stored(5), "invoicing to store the correction", 60)
        late = await db["invoicing_charges"].find_one({"_id": "ec2-late:rerated:1"})
        assert late is not None
        assert (late["invoice_id"], late["late"], late["period"]) == ("acme:2024-10", True, PERIOD)
        assert await db["invoicing_invoices"].find_one({"_id": f"acme:{PERIOD}"}) == finalized

        async def next_draft_has_it() -> bool:
            doc = await MongoInvoiceRepository(db).invoice("acme:2024-10")  # with its lines
            lines: list[dict[str, int]] = [] if doc is None else doc.get("draft_lines", [])
            return sum(line["price_units"] for line in lines) == 5 * 10**9

        await eventually(next_draft_has_it, "the 2024-10 draft to carry the 5.00 correction")

        # running it again finds nothing left to correct and publishes nothing
        out = await pipeline.billing("rate", "--period", PERIOD, "--customer", "acme")
        assert "re-rated 2024-09 (customer acme): 4 records, 0 corrections published" in out
        assert await topic_size(servers, charge_topic) == published_before + 1
        # the September invoice, in the three e-invoice formats, validated (issue 17)
        await validate_issued(db, tmp_path, "rerating_e2e", expect=1)
    finally:
        await client.close()
