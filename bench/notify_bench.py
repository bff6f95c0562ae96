"""Benchmark: notify's emails per second, run as a service process on the shared Kafka and
database, mailing an SMTP sink this script runs.

For each variant, N customers, their PDFs (~50 KB each, stored by invoicing's own PDF store)
and N ``InvoiceFinalized`` events (one per customer) are put into a fresh topic namespace and
database; ``python -m billing_invoicing`` serves the PDFs (notify reads each through its API,
``GET /v1/documents/{file_id}``, as in production), then ``python -m billing_notify`` is
started on them and timed until the sink holds N emails.
Variants: ``new`` (the code of this checkout), ``baseline`` (notify's sources of
``--baseline`` put ahead on ``PYTHONPATH``, everything else the same), each run back to back on
the same machine state. Reported: emails/s from the first email to the last (the steady rate),
and seconds from the process start to the last email.

    .venv/bin/python bench/notify_bench.py --emails 300 --baseline 8fc33c8

The namespace's topics and database are deleted afterwards. Results are appended to
``bench/results/notify.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from billing_catalog.models import (
    Address,
    Contact,
    ContactRole,
    Customer,
    InvoicingEntity,
    PriceList,
)
from billing_catalog.store import CUSTOMERS, INVOICING_ENTITIES
from billing_devtools.mail_sink import MaildirSink, serve
from billing_devtools.testing import produce
from billing_invoicing.adapters.documents import InvoicePdfStore, pdf_file_id
from billing_runtime.kafka import ensure_topics
from billing_schemas.events import FinalizedInvoice, InvoiceFinalized
from billing_schemas.topics import Topic, topic_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "notify.jsonl"
PDF = b"%PDF-1.7\n" + os.urandom(50_000) + b"\n%%EOF\n"
ENTITY = InvoicingEntity(
    id="cumulus",
    name="Cumulus Cloud GmbH",
    address=Address(lines=["Wolkenweg 1", "Berlin"], country="DE"),
    number_prefix="CUM-",
    email="billing@cumulus.example",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _customer(n: int) -> Customer:
    return Customer(
        id=f"c{n}",
        name=f"Customer {n}",
        address=Address(lines=["1 Main St", "Springfield"], country="US"),
        currency="USD",
        invoicing_entity=ENTITY.id,
        price_list=PriceList(id="std"),
        contacts=[Contact(email=f"ap@c{n}.example", roles=[ContactRole.BILLING], primary=True)],
    )


def _event(n: int) -> InvoiceFinalized:
    invoice = FinalizedInvoice(
        invoice_id=f"inv-{n}",
        invoice_number=f"CUM-2024-{n:06d}",
        customer_id=f"c{n}",
        customer_name=f"Customer {n}",
        invoicing_entity_id=ENTITY.id,
        period="2024-09",
        issue_date=date(2024, 10, 1),
        due_date=date(2024, 10, 31),
        currency="USD",
        subtotal=Decimal("100.00"),
        tax=Decimal("19.00"),
        total=Decimal("119.00"),
        outstanding=Decimal("119.00"),
        line_count=1,
        pdf_file_id=pdf_file_id(f"inv-{n}"),
        pdf_sha256=hashlib.sha256(PDF).hexdigest(),
    )
    return InvoiceFinalized.create(
        invoice,
        source="billing-invoicing",
        correlation_id="close",
        occurred_at=datetime(2024, 10, 1, 6, 30, tzinfo=UTC),
    )


async def _prepare(kafka: str, mongodb: str, namespace: str, emails: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb, tz_aware=True)
    try:
        db = client[namespace]
        await db[INVOICING_ENTITIES].insert_one(
            {"_id": ENTITY.id, **ENTITY.model_dump(mode="json")}
        )
        await db[CUSTOMERS].insert_many(
            [{"_id": f"c{n}", **_customer(n).model_dump(mode="json")} for n in range(emails)]
        )
        store = InvoicePdfStore(db)  # as invoicing's close stores them
        for n in range(emails):
            await store.save(invoice_id=f"inv-{n}", number=f"CUM-2024-{n:06d}", pdf=PDF)
    finally:
        await client.close()
    topic = topic_name(Topic.INVOICE_FINALIZED, f"{namespace}.")
    await ensure_topics(kafka, [topic])
    await produce(
        kafka,
        topic,
        [(f"c{n}".encode(), _event(n).model_dump_json().encode()) for n in range(emails)],
    )


async def _clean(kafka: str, mongodb: str, namespace: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb)
    try:
        await client.drop_database(namespace)
    finally:
        await client.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(f"{namespace}.")]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


READER_TOKEN = "bench-document-reader-token-0123"


async def _start_invoicing(
    kafka: str, mongodb: str, namespace: str
) -> tuple[asyncio.subprocess.Process, str]:
    """Invoicing on the variant's namespace, serving the PDFs; its API's URL once healthy."""
    port = _free_port()
    env = os.environ | {
        "BILLING_INVOICING_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "BILLING_INVOICING_MONGODB_URL": mongodb,
        "BILLING_INVOICING_MONGODB_DATABASE": namespace,
        "BILLING_INVOICING_TOPIC_NAMESPACE": f"{namespace}.",
        "BILLING_INVOICING_HTTP_PORT": str(port),
        "BILLING_INVOICING_PDF_WORKERS": "1",
        "BILLING_INVOICING_DOCUMENT_READER_TOKENS": READER_TOKEN,
        "BILLING_INVOICING_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "billing_invoicing", env=env
    )
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=2.0) as client:
        for _ in range(600):
            if process.returncode is not None:
                msg = f"invoicing exited with {process.returncode}"
                raise RuntimeError(msg)
            try:
                if (await client.get(f"{url}/health")).status_code == 200:
                    return process, url
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    process.terminate()
    msg = "invoicing did not become healthy within 60 s"
    raise RuntimeError(msg)


async def run_variant(
    name: str, kafka: str, mongodb: str, emails: int, python_path: str | None, within_seconds: float
) -> dict[str, Any]:
    """One variant: prepare, start notify, time the emails into the sink, clean up."""
    namespace = f"nb{uuid.uuid4().hex[:10]}"
    await _prepare(kafka, mongodb, namespace, emails)
    invoicing, invoicing_url = await _start_invoicing(kafka, mongodb, namespace)
    with tempfile.TemporaryDirectory() as tmp:
        sink = MaildirSink(Path(tmp))
        server = await serve(sink, "127.0.0.1", 0)
        smtp_port = int(server.sockets[0].getsockname()[1])
        env = os.environ | {
            "BILLING_NOTIFY_KAFKA_BOOTSTRAP_SERVERS": kafka,
            "BILLING_NOTIFY_MONGODB_URL": mongodb,
            "BILLING_NOTIFY_MONGODB_DATABASE": namespace,
            "BILLING_NOTIFY_TOPIC_NAMESPACE": f"{namespace}.",
            "BILLING_NOTIFY_SMTP_PORT": str(smtp_port),
            "BILLING_NOTIFY_HTTP_PORT": str(_free_port()),
            "BILLING_NOTIFY_LOG_LEVEL": "WARNING",
            "BILLING_NOTIFY_INVOICING_URL": invoicing_url,
            "BILLING_NOTIFY_INVOICING_TOKEN": READER_TOKEN,
        }
        if python_path:
            env["PYTHONPATH"] = python_path
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "billing_notify", env=env
        )
        first: float | None = None
        try:
            while len(sink.received) < emails:
                if process.returncode is not None:
                    msg = f"notify exited with {process.returncode}"
                    raise RuntimeError(msg)
                if time.perf_counter() - started > within_seconds:
                    msg = f"{len(sink.received)} of {emails} emails after {within_seconds} s"
                    raise TimeoutError(msg)
                if first is None and sink.received:
                    first = time.perf_counter()
                await asyncio.sleep(0.05)
            last = time.perf_counter()
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
            invoicing.terminate()
            await asyncio.wait_for(invoicing.wait(), 40)
            server.close()
            await _clean(kafka, mongodb, namespace)
    assert first is not None
    return {
        "variant": name,
        "emails": emails,
        "emails_per_s": round((emails - 1) / (last - first), 2) if last > first else None,
        "seconds_to_last": round(last - started, 1),
        "send_concurrency": env.get("BILLING_NOTIFY_SEND_CONCURRENCY", "default"),
    }


def _baseline_sources(commit: str, directory: Path) -> str:
    archive = subprocess.run(
        ["git", "archive", commit, "services/notify/src"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return str(directory / "services" / "notify" / "src")


async def main() -> None:
    """Run the variants back to back and report them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=300)
    parser.add_argument("--baseline", help="a commit whose notify sources are the baseline")
    parser.add_argument("--timeout", type=float, default=1200.0)
    args = parser.parse_args()
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    mongodb = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27117/")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            path = _baseline_sources(args.baseline, Path(tmp))
            results.append(
                await run_variant("baseline", kafka, mongodb, args.emails, path, args.timeout)
            )
        results.append(await run_variant("new", kafka, mongodb, args.emails, None, args.timeout))
    at = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        for result in results:
            out.write(json.dumps({"at": at, **result}) + "\n")
            print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
