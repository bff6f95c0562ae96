"""Benchmark: FOCUS rows from file to acknowledged publish, on the real broker.

Run with ``make bench-ingest`` (it starts the local stack). It writes a synthetic FOCUS bill of
N rows (default 1,000,000; rows of the real sample, each made unique) under ``bench/tmp/``, then
measures in one run:

* ``billing ingest``'s path: read (pyarrow, streaming), validate, normalize, publish every record
  and wait for the broker's acknowledgements (the bill registry is the real database);
* the raw aiokafka batch-publish rate of the same serialized records (``create_batch`` /
  ``send_batch``, the fastest the client can go), as the ceiling to compare with;

and reports rows/s, the ratio between the two and the peak RSS of the ingest pass (measured in a
separate process, so that the file generation and the raw pass do not count). Results are
appended to ``bench/results/ingest.jsonl`` and printed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench_results import record_result

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "demo" / "focus_sample.csv"
TMP = ROOT / "bench" / "tmp"


def make_bill(rows: int) -> Path:
    """A FOCUS file of ``rows`` rows: the sample's rows repeated, each with a unique resource."""
    path = TMP / f"focus_{rows}.csv"
    if path.exists():
        return path
    TMP.mkdir(parents=True, exist_ok=True)
    with SAMPLE.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        sample = list(reader)
    resource_col = header.index("ResourceId")
    with path.open("w", newline="") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        for i in range(rows):
            row = list(sample[i % len(sample)])
            row[resource_col] = f"bench-{i}"
            writer.writerow(row)
    return path


async def ingest_pass(path: Path, namespace: str) -> dict[str, float]:
    """``billing ingest``'s code path, timed from the first byte read to the last ack."""
    from billing_ingest.bootstrap import load_context
    from billing_ingest.service.load_bill import load_bill
    from billing_ingest.settings import IngestSettings

    settings = IngestSettings(
        kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
        mongodb_url=os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27117/"),
        mongodb_database=f"bench_{namespace.strip('.')}",
        topic_namespace=namespace,
    )
    async with load_context(settings, client_id="bench-ingest") as ctx:
        started = time.perf_counter()
        result = await load_bill(
            path,
            publisher=ctx.ports.publisher,
            registry=ctx.ports.registry,
            on_progress=lambda n: print(f"\r  ingest: {n:,} rows", end="", file=sys.stderr),
        )
        elapsed = time.perf_counter() - started
        print(file=sys.stderr)
        await ctx.db.client.drop_database(settings.mongodb_database)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": result.summary.rows_read,
        "seconds": elapsed,
        "rows_per_second": result.summary.rows_read / elapsed,
        "peak_rss_mb": peak_rss_mb,
    }


async def raw_pass(path: Path, namespace: str, limit: int) -> dict[str, float]:
    """The same records, serialized up front, pushed with aiokafka's own batches."""
    from aiokafka import AIOKafkaProducer

    from billing_ingest.adapters.memory import InMemoryBillRegistry
    from billing_ingest.service.load_bill import load_bill
    from billing_runtime.kafka import ensure_topics

    class Keep:
        """Keeps the serialized records ingest would publish (the first ``limit``)."""

        def __init__(self) -> None:
            self.records: list[tuple[bytes, bytes]] = []

        async def usage_serialized(self, records: list[tuple[str, bytes]], _: str) -> None:
            room = limit - len(self.records)
            self.records += [(k.encode(), v) for k, v in records[:room]]

        async def rejected(self, events: object) -> None:
            del events

        async def bill_processed(self, event: object) -> None:
            del event

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    topic = f"{namespace}raw"
    await ensure_topics(bootstrap, [topic], partitions=4)
    keep = Keep()
    await load_bill(path, publisher=keep, registry=InMemoryBillRegistry())
    payloads = keep.records
    from billing_runtime.kafka import COMPRESSION

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 20,
        compression_type=COMPRESSION,  # as ingest's publisher
    )
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        started = time.perf_counter()
        futures = []
        batch = producer.create_batch()
        part = 0
        for key, value in payloads:
            if batch.append(key=key, value=value, timestamp=None) is None:
                sent = await producer.send_batch(batch, topic, partition=partitions[part])
                futures.append(sent)
                part = (part + 1) % len(partitions)
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        futures.append(await producer.send_batch(batch, topic, partition=partitions[part]))
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return {"rows": len(payloads), "seconds": elapsed, "rows_per_second": len(payloads) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--raw-rows", type=int, default=200_000, help="records for the raw pass")
    parser.add_argument("--child", choices=["ingest"], help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "ingest":
        print(json.dumps(asyncio.run(ingest_pass(Path(args.file), args.namespace))))
        return
    namespace = f"bench{uuid.uuid4().hex[:8]}."
    print(f"writing a {args.rows:,}-row FOCUS bill...", file=sys.stderr)
    path = make_bill(args.rows)
    command = [sys.executable, __file__, "--child", "ingest", "--namespace", namespace]
    child = subprocess.run(
        [*command, "--file", str(path)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    ingest = json.loads(child.stdout.strip().splitlines()[-1])
    print(
        f"raw aiokafka batch publish of {args.raw_rows:,} of the same records...", file=sys.stderr
    )
    raw = asyncio.run(raw_pass(path, namespace, args.raw_rows))
    record_result(
        "ingest",
        {
            "ingest": ingest,
            "raw_aiokafka_batch": raw,
            "ratio_ingest_to_raw": ingest["rows_per_second"] / raw["rows_per_second"],
            "targets": {"rows_per_second": 100_000, "peak_rss_mb": 300},
        },
    )


if __name__ == "__main__":
    main()
