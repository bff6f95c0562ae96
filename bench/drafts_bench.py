"""Benchmark: invoicing's charges onto drafts, the stage that bounds the pipeline (issue 11).

Run with ``make bench-drafts`` (shared or local stack: ``KAFKA_BOOTSTRAP_SERVERS``,
``MONGODB_URL``). N rated charges (default 100,000; ``CHARGES=...``) for C customers (default
200; ``CUSTOMERS=...``), one period, 12 services, are published once to a charge topic of the
run's own namespace (4 partitions, keyed by customer as rating keys them). Then each run
(``--runs``, e.g. ``base,new,base,new`` to alternate two versions of the code on the same load)
starts invoicing's service (``bench/drafts_consumer.py``: ``python -m billing_invoicing`` plus a
count of database commands and their time per batch) with a consumer group and a database of
its own, and waits until the group has committed all N. Charges/s on drafts is N over the time
from the start of the consumer's first batch to the end of its last (start-up and the group's
join left out; the consumer's monotonic clock is this process's); the rate read from committed
offsets is kept beside it (it leaves the first batch out, which favours larger batches). After
each run the drafts' totals are read back from the ledgers and must equal what was published:
a run whose totals differ is reported as wrong, not as fast.

``--baseline REV`` makes the runs named ``base`` use invoicing's code of that git revision
(exported to ``var/bench/drafts-base``, put first on the child's ``PYTHONPATH``); the other runs
use the working tree. Results are appended to ``bench/results/invoicing_drafts.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
from bench_results import database_backend, record_result
from pipeline_probes import free_port

ROOT = Path(__file__).resolve().parents[1]
TMP = ROOT / "bench" / "tmp"
BASELINE_SRC = ROOT / "var" / "bench" / "drafts-base"
"""Where the baseline's code goes: under ``var/``, which the linters and mypy leave alone."""
SERVICES = [("AWS", f"Service {i:02d}") for i in range(8)] + [
    ("Azure", f"Service {i:02d}") for i in range(4)
]
PERIOD = "2024-09"


def bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")


def mongodb_url() -> str:
    return os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27117/")


def charges(count: int, customers: int) -> list[tuple[str, bytes, str, Decimal]]:
    """``(key, event JSON, customer, price)`` of ``count`` distinct rated charges."""
    from billing_schemas.events import ChargeCategory, ChargeRated, LineType, RatedCharge

    start = datetime(2024, 9, 1, tzinfo=UTC)
    out = []
    for i in range(count):
        customer = f"bench-{i % customers:05d}"
        provider, service = SERVICES[(i // customers) % len(SERVICES)]
        cost = Decimal(1 + i % 997) / 1000
        price = cost * Decimal("1.125")
        hour = start + timedelta(hours=i % 720)
        data = RatedCharge(
            charge_id=f"charge-{i:09d}",
            record_id=f"charge-{i:09d}",
            customer_id=customer,
            provider=provider,
            sub_account_id=f"{customer}-{provider}",
            billing_period=PERIOD,
            charge_period_start=hour,
            charge_period_end=hour + timedelta(hours=1),
            charge_category=ChargeCategory.USAGE,
            line_type=LineType.ON_DEMAND,
            service_name=service,
            sku_id="sku-1",
            description="bench usage",
            region="eu-west-1",
            quantity=Decimal(1 + i % 17),
            unit="Hrs",
            cost=cost,
            cost_currency="USD",
            price=price,
            currency="USD",
            margin=price - cost,
            rule="markup 12.5% (global)",
            price_list_id="bench-list",
            price_list_version=1,
        )
        event = ChargeRated.create(data, source="drafts-bench", correlation_id="drafts-bench")
        out.append((customer, event.model_dump_json().encode(), customer, price))
    return out


async def publish(namespace: str, records: list[tuple[str, bytes, str, Decimal]]) -> str:
    from billing_runtime.kafka import EventPublisher, ensure_topics
    from billing_schemas.channels import CHARGE_RATED

    topic = CHARGE_RATED.name(namespace)
    await ensure_topics(bootstrap(), [topic])
    publisher = EventPublisher(bootstrap(), "drafts-bench")
    await publisher.start()
    try:
        for start in range(0, len(records), 10_000):
            chunk = records[start : start + 10_000]
            await publisher.publish_serialized(
                topic,
                [(key, value) for key, value, _, _ in chunk],
                event_type="charge.rated",
                correlation_id="drafts-bench",
            )
    finally:
        await publisher.stop()
    return topic


async def committed(admin: Any, group: str, partitions: list[Any]) -> int:
    offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
    return sum(max(meta.offset, 0) for meta in offsets.values() if meta is not None)


async def drafts_totals(database: str) -> tuple[int, dict[str, Decimal]]:
    """Charges counted and the exact price per draft, as the ledgers hold them."""
    from pymongo import AsyncMongoClient

    from billing_invoicing.adapters.invoice_repo import LEDGERS, ledger_of_document

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url())
    try:
        count, totals = 0, {}
        async for doc in client[database][LEDGERS].find({}):
            for invoice_id, sums in ledger_of_document(doc).drafts.items():
                count += sums.charge_count
                totals[invoice_id] = sums.total
        return count, totals
    finally:
        await client.close()


async def drop(database: str) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url())
    try:
        await client.drop_database(database)
    finally:
        await client.close()


def export_baseline(rev: str) -> Path:
    """Invoicing's source at ``rev``, exported beside the benchmark's other scratch files."""
    target = BASELINE_SRC
    subprocess.run(["rm", "-rf", str(target)], check=True)
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", rev, "services/invoicing/src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "services" / "invoicing" / "src"


async def one_run(
    label: str,
    namespace: str,
    topic: str,
    expected: dict[str, Decimal],
    src: Path | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    from aiokafka.admin import AIOKafkaAdminClient

    from billing_invoicing.domain.model import invoice_id_for
    from billing_runtime.lag import topic_partitions
    from billing_schemas.channels import INVOICING

    tag = uuid.uuid4().hex[:6]
    base_group = f"drafts-bench-{label}-{tag}"
    database = f"drafts_bench_{tag}"
    stats_file = TMP / f"drafts-{label}-{tag}.json"
    log_file = TMP / f"drafts-{label}-{tag}.log"
    env = {
        **os.environ,
        "BILLING_INVOICING_KAFKA_BOOTSTRAP_SERVERS": bootstrap(),
        "BILLING_INVOICING_MONGODB_URL": mongodb_url(),
        "BILLING_INVOICING_MONGODB_DATABASE": database,
        "BILLING_INVOICING_TOPIC_NAMESPACE": namespace,
        "BILLING_INVOICING_CONSUMER_GROUP": base_group,
        "BILLING_INVOICING_HTTP_PORT": str(free_port()),
        "BILLING_INVOICING_PDF_WORKERS": "1",
        "DRAFTS_BENCH_STATS": str(stats_file),
    }
    env.update(args.env)
    env.update(setting for name, setting in args.run_env if name == label)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    group = INVOICING.name(base_group, namespace)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(), client_id="drafts-bench")
    await admin.start()
    with log_file.open("w") as log:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "drafts_consumer.py"),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    print(f"[{label}] invoicing pid {child.pid}, group {group}, database {database}", flush=True)
    samples: list[tuple[float, int]] = []
    peak_rss = 0
    total = args.charges
    try:
        partitions = await topic_partitions(admin, [topic])
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            if child.returncode is not None:
                msg = f"invoicing exited with {child.returncode}: see {log_file}"
                raise RuntimeError(msg)
            samples.append((time.monotonic(), await committed(admin, group, partitions)))
            with contextlib.suppress(psutil.Error):
                peak_rss = max(peak_rss, psutil.Process(child.pid).memory_info().rss)
            if samples[-1][1] >= total:
                break
            if len(samples) % 20 == 0:
                print(f"[{label}] {samples[-1][1]:,} of {total:,} on drafts", flush=True)
            await asyncio.sleep(args.sample_seconds)
    finally:
        await admin.close()
        if child.returncode is None:
            child.terminate()
        await asyncio.wait_for(child.wait(), timeout=60)
    from pipeline_probes import stage_rate

    # what the offsets say (from the last sample before the first commit: the first batch is
    # not in that time, so it favours larger batches) ...
    committed_rate = stage_rate(samples)
    count, totals = await drafts_totals(database)
    wanted = {invoice_id_for(c, PERIOD): p for c, p in expected.items()}
    correct = count == args.charges and totals == wanted
    batches = json.loads(stats_file.read_text())["batches"] if stats_file.exists() else []
    if not args.keep:
        await drop(database)
    per_batch = [b["commands"] for b in batches]
    by_command: dict[str, int] = {}
    command_seconds: dict[str, float] = {}
    for b in batches:
        for name, n in b["by_command"].items():
            by_command[name] = by_command.get(name, 0) + n
        for name, seconds in b.get("command_seconds", {}).items():
            command_seconds[name] = round(command_seconds.get(name, 0) + seconds, 3)
    # ... and from the start of the first batch to the end of the last (the consumer's clock is
    # this process's): every batch in, start-up and the group's join out
    if not batches:
        msg = f"invoicing handled no batch: see {log_file}"
        raise RuntimeError(msg)
    seconds = max(b["ended"] for b in batches) - min(b["started"] for b in batches)
    figures = {
        "label": label,
        "code": "working tree" if src is None else f"baseline {args.baseline}",
        "charges": sum(b["records"] for b in batches),
        "seconds": round(seconds, 2),
        "charges_per_second": round(sum(b["records"] for b in batches) / seconds, 1),
        "timed_out": samples[-1][1] < total,
        "committed_offsets": committed_rate,
        "peak_rss_mb": round(peak_rss / 2**20),
        "totals_equal_published": correct,
        "batches": len(batches),
        "records_per_batch_mean": round(statistics.mean([b["records"] for b in batches]), 1)
        if batches
        else None,
        "db_commands_per_batch_median": statistics.median(per_batch) if per_batch else None,
        "db_commands_per_batch_mean": round(statistics.mean(per_batch), 1) if per_batch else None,
        "db_commands_by_name": by_command,
        "db_command_seconds_by_name": command_seconds,
        "handler_seconds": round(sum(b["seconds"] for b in batches), 2),
    }
    print(f"[{label}] {json.dumps(figures)}", flush=True)
    return figures


async def main(args: argparse.Namespace) -> None:
    TMP.mkdir(parents=True, exist_ok=True)
    namespace = f"drafts-bench-{uuid.uuid4().hex[:6]}."
    labels = [label.strip() for label in args.runs.split(",") if label.strip()]
    if "base" in labels and not args.baseline:
        sys.exit("--runs names a 'base' run: give --baseline REV")
    src = export_baseline(args.baseline) if args.baseline else None
    print(f"building {args.charges:,} charges for {args.customers} customers", flush=True)
    records = charges(args.charges, args.customers)
    expected: dict[str, Decimal] = {}
    for _, _, customer, price in records:
        expected[customer] = expected.get(customer, Decimal(0)) + price
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    topic = await publish(namespace, records)
    del records
    print(f"published to {topic}", flush=True)
    try:
        runs = [
            await one_run(label, namespace, topic, expected, src if label == "base" else None, args)
            for label in labels
        ]
    finally:
        if not args.keep:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(), client_id="drafts-bench")
            await admin.start()
            try:
                existing = [t for t in await admin.list_topics() if t.startswith(namespace)]
                await admin.delete_topics(existing)
            finally:
                await admin.close()
    record_result(
        "invoicing_drafts",
        {
            "charges": args.charges,
            "customers": args.customers,
            "database": await database_backend(mongodb_url()),
            "load_average_at_start": load_at_start,
            "settings": dict(args.env),
            "run_settings": [[label, dict([setting])] for label, setting in args.run_env],
            "runs": runs,
        },
    )


def parse_env(value: str) -> tuple[str, str]:
    name, _, setting = value.partition("=")
    return name, setting


def parse_run_env(value: str) -> tuple[str, tuple[str, str]]:
    label, _, setting = value.partition(":")
    return label, parse_env(setting)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--charges", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--runs", default="new", help="labels, comma-separated: base runs the "
                        "--baseline code, any other label the working tree")  # fmt: skip
    parser.add_argument("--baseline", help="git revision of the 'base' runs")
    parser.add_argument("--env", type=parse_env, action="append", default=[],
                        help="NAME=VALUE for the service (repeatable)")  # fmt: skip
    parser.add_argument("--run-env", type=parse_run_env, action="append", default=[],
                        help="LABEL:NAME=VALUE for one run (repeatable)")  # fmt: skip
    parser.add_argument("--sample-seconds", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep", action="store_true", help="keep the databases and topic")
    asyncio.run(main(parser.parse_args()))
