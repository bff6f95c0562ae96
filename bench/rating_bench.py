"""Benchmark: rating's consume -> rate -> publish path on the real broker, beside a raw
pass-through of the same records and the pure engine.

Run with ``make bench-rating`` (it starts the local stack). N usage records (default 200,000;
``RECORDS=...``) of 20 cloud accounts of 5 customers are published once to a fresh usage topic
(4 partitions, keyed by sub-account as ingest keys them): EC2, Lambda and RDS lines priced by
markup or discount rules, and ``--tiered-percent`` (default 0) S3 lines priced by graduated
tiers, each of which claims its place in the period's running total in the database (see
docs/rating.md for what that costs on FerretDB). Then, in one run:

1. **service**: ``python -m billing_rating`` (the service itself, its consumer and batch handler,
   with its default settings) rates the topic into the charge topic: decode, catalog lookup,
   rate, tier claims and rated records into FerretDB, publish, commit;
2. **raw**: a child process with a bare aiokafka consumer (same batch size) that republishes
   each batch's bytes unchanged with aiokafka's own record batches, awaits the acks and
   commits: the ceiling for any consume -> publish service on this broker and machine;
3. **engine**: ``rate_usage`` alone over the same records, already decoded, in this process.

Both broker passes are timed the same way, by this process watching the output topic's end
offsets: from the first output message seen to the last (start-up and the consumer group's join
are left out of both). Results are appended to ``bench/results/rating.jsonl`` and printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench_results import record_result

ROOT = Path(__file__).resolve().parents[1]
CUSTOMERS = 5
ACCOUNTS_PER_CUSTOMER = 4
RAW_OUT = "raw-out"


def bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")


def mongodb_url() -> str:
    return os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27117/")


def catalog_document() -> dict[str, Any]:
    """Customers, accounts and one price list: markup, a service discount, S3 tiers."""
    rules = [
        {"kind": "markup", "percent": "12.5"},
        {"kind": "discount", "percent": "5", "provider": "AWS", "service": "AWS Lambda"},
        {
            "id": "s3-tiers",
            "kind": "tiered",
            "mode": "graduated",
            "service": "Amazon S3",
            "tiers": [
                {"up_to": "50000", "unit_price": "0.023"},
                {"up_to": "500000", "unit_price": "0.022"},
                {"unit_price": "0.021"},
            ],
        },
    ]
    return {
        "invoicing_entities": [
            {
                "id": "bench",
                "name": "Bench Reseller",
                "address": {"lines": ["1 Bench Road"], "country": "DE"},
                "number_prefix": "B-",
                "email": "billing@bench.example",
            }
        ],
        "price_lists": [
            {
                "id": "bench-list",
                "versions": [
                    {
                        "version": 1,
                        "effective_from": "2024-01-01",
                        "currency": "USD",
                        "rules": rules,
                    }
                ],
            }
        ],
        "customers": [
            {
                "id": f"customer-{c}",
                "name": f"Customer {c}",
                "address": {"lines": ["1 Main Street"], "country": "US"},
                "currency": "USD",
                "invoicing_entity": "bench",
                "price_list": "bench-list",
                "accounts": [
                    {"provider": "AWS", "account_id": account_id(c, a)}
                    for a in range(ACCOUNTS_PER_CUSTOMER)
                ],
            }
            for c in range(CUSTOMERS)
        ],
    }


def account_id(customer: int, account: int) -> str:
    return f"{100000000000 + customer * 100 + account}"


SERVICES = [
    ("Amazon EC2", "BoxUsage:m5.large", "Hrs"),
    ("Amazon EC2", "BoxUsage:c5.xlarge", "Hrs"),
    ("AWS Lambda", "Lambda-GB-Second", "GB-Seconds"),
    ("Amazon RDS", "InstanceUsage:db.r5.large", "Hrs"),
]
TIERED = ("Amazon S3", "TimedStorage-ByteHrs", "GB-Mo")


def make_records(count: int, tiered_percent: int) -> list[Any]:
    """``count`` distinct usage records (``UsageRecord``); ``tiered_percent`` of every 100 are
    S3 lines (graduated tiers), the others EC2, Lambda and RDS lines (markup, discount)."""
    from billing_schemas.events import ChargeCategory, LineType, UsageRecord

    start = datetime(2024, 9, 1, tzinfo=UTC)
    records = []
    for i in range(count):
        customer, account = i % CUSTOMERS, (i // CUSTOMERS) % ACCOUNTS_PER_CUSTOMER
        service, sku, unit = TIERED if i % 100 < tiered_percent else SERVICES[i % len(SERVICES)]
        hour = start + timedelta(hours=i % 720)
        quantity = Decimal(1 + i % 17)
        records.append(
            UsageRecord(
                record_id=f"bench-{i:09d}",
                provider="AWS",
                billing_account_id="999999999999",
                sub_account_id=account_id(customer, account),
                billing_period="2024-09",
                charge_period_start=hour,
                charge_period_end=hour + timedelta(hours=1),
                charge_category=ChargeCategory.USAGE,
                line_type=LineType.ON_DEMAND,
                service_name=service,
                sku_id=sku,
                region="eu-west-1",
                resource_id=f"arn:aws:bench:{i}",
                pricing_quantity=quantity,
                pricing_unit=unit,
                currency="USD",
                list_cost=quantity * Decimal("0.096"),
                billed_cost=quantity * Decimal("0.0912"),
                effective_cost=quantity * Decimal("0.0912"),
            )
        )
    return records


async def setup(namespace: str, records: list[Any]) -> None:
    """Topics, the catalog in the bench database, and the records on the usage topic."""
    from aiokafka import AIOKafkaProducer

    from billing_catalog.models import Catalog
    from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
    from billing_runtime.kafka import COMPRESSION, ensure_topics
    from billing_runtime.mongo import make_mongo_client
    from billing_schemas.events import UsageRecorded
    from billing_schemas.topics import Topic, all_topic_names, topic_name

    await ensure_topics(bootstrap(), [*all_topic_names(namespace), f"{namespace}{RAW_OUT}"])
    mongo = make_mongo_client(mongodb_url())
    try:
        repo = MongoCatalogRepository(mongo[database(namespace)])
        await repo.apply(Catalog.model_validate(catalog_document()))
    finally:
        await mongo.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap(),
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 20,
        compression_type=COMPRESSION,
    )
    await producer.start()
    try:
        from aiokafka.partitioner import DefaultPartitioner

        topic = topic_name(Topic.USAGE_RECORDED, namespace)
        partitions = sorted(await producer.partitions_for(topic))
        partitioner = DefaultPartitioner()
        headers = [("content-type", b"application/json"), ("event-type", b"usage.recorded")]
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for record in records:
            key = record.sub_account_id.encode()
            event = UsageRecorded.create(
                record, source="bench", correlation_id="bench", event_id=record.record_id
            )
            part = partitioner(key, partitions, partitions)
            by_partition.setdefault(part, []).append((key, event.model_dump_json().encode()))
        futures = []
        for part, items in by_partition.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=part))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None, headers=headers)
            futures.append(await producer.send_batch(batch, topic, partition=part))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def database(namespace: str) -> str:
    return f"bench_{namespace.strip('.')}"


async def watch(topic: str, expected: int, process: subprocess.Popen[bytes]) -> dict[str, float]:
    """Poll the topic's end offsets until ``expected`` messages: first-to-last output time."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    from billing_runtime.lag import topic_partitions

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap())
    await admin.start()
    await consumer.start()
    try:
        partitions = await topic_partitions(admin, [topic])
        first_at: float | None = None
        first_count = 0
        last_print = 0.0
        while True:
            count = sum((await consumer.end_offsets(partitions)).values())
            now = time.perf_counter()
            if count and first_at is None:
                first_at, first_count = now, count
            if now - last_print > 5:
                print(f"\r  {count:,} of {expected:,}", end="", file=sys.stderr)
                last_print = now
            if count >= expected:
                break
            if process.poll() is not None:
                msg = f"the process under test exited with {process.returncode}"
                raise RuntimeError(msg)
            await asyncio.sleep(0.1)
        print(file=sys.stderr)
    finally:
        await consumer.stop()
        await admin.close()
    assert first_at is not None
    seconds = now - first_at
    records = count - first_count
    return {"records": count, "seconds": seconds, "records_per_second": records / seconds}


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def service_pass(namespace: str, expected: int, log: Path) -> dict[str, float]:
    """``python -m billing_rating`` on the topic; timed by its output."""
    from billing_schemas.topics import Topic, topic_name

    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env |= {
        "BILLING_RATING_KAFKA_BOOTSTRAP_SERVERS": bootstrap(),
        "BILLING_RATING_MONGODB_URL": mongodb_url(),
        "BILLING_RATING_MONGODB_DATABASE": database(namespace),
        "BILLING_RATING_TOPIC_NAMESPACE": namespace,
        "BILLING_RATING_HTTP_PORT": "0",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "billing_rating"], env=env, stdout=out, stderr=out
        )
    try:
        return asyncio.run(watch(topic_name(Topic.CHARGE_RATED, namespace), expected, process))
    finally:
        stop(process)


async def pass_through(namespace: str, max_records: int) -> None:
    """Child: consume the usage topic in batches, republish each batch's bytes, commit."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from billing_runtime.kafka import COMPRESSION
    from billing_schemas.topics import Topic, topic_name

    consumer = AIOKafkaConsumer(
        topic_name(Topic.USAGE_RECORDED, namespace),
        bootstrap_servers=bootstrap(),
        group_id=f"{namespace}raw-pass",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap(),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=1 << 20,
        compression_type=COMPRESSION,
    )
    await consumer.start()
    await producer.start()
    target = f"{namespace}{RAW_OUT}"
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
            futures = []
            for tp, records in batches.items():
                # same partition number on the way out: order kept, as keyed publishing would
                batch = producer.create_batch()
                for r in records:
                    headers = list(r.headers)
                    if (
                        batch.append(key=r.key, value=r.value, timestamp=None, headers=headers)
                        is None
                    ):
                        futures.append(
                            await producer.send_batch(batch, target, partition=tp.partition)
                        )
                        batch = producer.create_batch()
                        batch.append(key=r.key, value=r.value, timestamp=None, headers=headers)
                futures.append(await producer.send_batch(batch, target, partition=tp.partition))
            await asyncio.gather(*futures)
            if batches:
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


def raw_pass(namespace: str, expected: int, max_records: int) -> dict[str, float]:
    """The pass-through child, timed by its output like the service."""
    command = [sys.executable, __file__, "--child", "raw", "--namespace", namespace]
    process = subprocess.Popen([*command, "--max-records", str(max_records)])
    try:
        return asyncio.run(watch(f"{namespace}{RAW_OUT}", expected, process))
    finally:
        stop(process)


def engine_pass(records: list[Any]) -> dict[str, float]:
    """``rate_usage`` alone, threading the tier state, over decoded records."""
    from billing_catalog.models import Catalog
    from billing_rating.domain.rating import CustomerPricing, rate_usage
    from billing_rating.domain.tiers import TierState

    catalog = Catalog.model_validate(catalog_document())
    [price_list] = catalog.price_lists
    pricing = {
        account.account_id: CustomerPricing(customer.id, customer.currency, price_list)
        for customer in catalog.customers
        for account in customer.accounts
    }
    state = TierState()
    started = time.perf_counter()
    for record in records:
        rated = rate_usage(record, pricing[record.sub_account_id], None, state)
        if rated.claim is not None:
            state.apply(rated.claim)
    seconds = time.perf_counter() - started
    return {
        "records": len(records),
        "seconds": seconds,
        "records_per_second": len(records) / seconds,
    }


async def clean(namespace: str) -> None:
    """Drop the bench database and topics."""
    from aiokafka.admin import AIOKafkaAdminClient

    from billing_runtime.mongo import make_mongo_client
    from billing_schemas.topics import all_topic_names

    mongo = make_mongo_client(mongodb_url())
    await mongo.drop_database(database(namespace))
    await mongo.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = [*all_topic_names(namespace), f"{namespace}{RAW_OUT}"]
        await admin.delete_topics([n for n in names if n in existing])
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument(
        "--tiered-percent",
        type=int,
        default=0,
        help="share of records priced by graduated tiers (each claims a place in the database)",
    )
    parser.add_argument("--child", choices=["raw"], help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--max-records", type=int, default=500, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "raw":
        asyncio.run(pass_through(args.namespace, args.max_records))
        return
    from billing_runtime.settings import ServiceSettings

    batch_size = ServiceSettings().batch_max_records  # the service's default batch
    namespace = f"bench{uuid.uuid4().hex[:8]}."
    print(f"making {args.records:,} usage records...", file=sys.stderr)
    records = make_records(args.records, args.tiered_percent)
    print("publishing them to the usage topic...", file=sys.stderr)
    asyncio.run(setup(namespace, records))
    load_before = os.getloadavg()
    try:
        print("rating service: consume -> rate -> publish...", file=sys.stderr)
        log = ROOT / "bench" / "tmp" / "rating-service.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        service = service_pass(namespace, args.records, log)
        print("raw aiokafka consume -> publish pass-through...", file=sys.stderr)
        raw = raw_pass(namespace, args.records, batch_size)
        print("the engine alone...", file=sys.stderr)
        engine = engine_pass(records)
    finally:
        asyncio.run(clean(namespace))
    record_result(
        "rating",
        {
            "load_average_at_start": [round(x, 2) for x in load_before],
            "batch_max_records": batch_size,
            "tiered_percent": args.tiered_percent,
            "service": service,
            "raw_aiokafka_pass_through": raw,
            "ratio_service_to_raw": service["records_per_second"] / raw["records_per_second"],
            "engine": engine,
            "targets": {"ratio_service_to_raw": 0.5},
        },
    )


if __name__ == "__main__":
    main()
