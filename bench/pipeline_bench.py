"""Benchmark: the whole pipeline, from a FOCUS bill file to emailed invoices, as a user runs it.

Run with ``make bench-pipeline`` (it starts the local Kafka and FerretDB). One run:

1. writes a synthetic FOCUS bill of N lines (default 1,000,000; ``LINES=...``) for C customers
   (default 1,000; ``CUSTOMERS=...``), each with four cloud accounts (two AWS, one Azure, one
   Oracle), from the rows of the real sample bill; ``--profile single`` gives every line to one
   customer (the worst case for one invoice). The catalog has four price lists (global markups, a
   service discount, a provider markup, graduated spend and quantity tiers) and every fifth customer
   subscribes to a plan that includes cloud infrastructure;
2. starts the four services as real processes (``python -m billing_<name>``) with their own topic
   namespace and database, and an SMTP sink in this process;
3. runs ``billing topics create``, ``billing catalog apply``, ``billing ingest`` and, once every
   charge is on a draft, ``billing invoices generate`` (the close), and waits until every invoice
   is finalized and emailed;
4. renders the same finalized invoice documents with bare WeasyPrint (the invoicing renderer,
   same template and number of processes, no database; Factur-X for the customers who receive
   it, as the close renders them), and passes the same usage bytes through
   a bare aiokafka consumer -> producer (the ceiling of any consume -> publish stage here).

Figures come from the broker, sampled every second with one long-lived client: the usage topic's
end offsets (ingest), the committed offsets of rating and invoicing (records/s per stage), the
invoice-finalized topic and notify's committed offsets (the close); and from ``psutil`` (peak RSS
and CPU of each process, broker and database included). A stage whose lag stops moving for
``--stall-seconds`` ends the run with a message; what was measured is still written. Results are
appended to ``bench/results/pipeline.jsonl`` and printed as a table. What each figure means:
docs/operations.md, "Capacity: the pipeline benchmark".

The workload is made in ``pipeline_workload.py``, the measuring tools are in ``pipeline_probes.py``.
The harness (``PipelineBench``) is also what ``tests/e2e/test_pipeline_totals_e2e.py`` runs,
smaller, to check that every invoice equals the sum of its rated charges.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import secrets
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import astuple, dataclass, field, fields
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import yaml
from bench_results import database_backend, record_result
from pipeline_probes import Counts, LagSampler, ProcessWatch, free_port, listening_pid, stage_rate
from pipeline_workload import PERIOD, ROOT, Workload, catalog_document, write_bill

TMP = ROOT / "bench" / "tmp"
PYTHON = ROOT / ".venv" / "bin" / "python"
BILLING = ROOT / ".venv" / "bin" / "billing"
SERVICES = ("ingest", "rating", "invoicing", "notify")
TARGETS = {"end_to_end_records_per_second": 25_000, "close_to_bare_ratio": 0.9, "peak_rss_mb": 500}


class BenchError(RuntimeError):
    """The run cannot go on (a stage stalled, a command or a service failed)."""


@dataclass
class Command:
    """A ``billing`` command running as its own process."""

    args: tuple[str, ...]
    process: asyncio.subprocess.Process
    output: asyncio.Task[bytes]
    started: float
    finished: float | None = None

    @property
    def done(self) -> bool:
        return self.output.done()

    async def result(self) -> str:
        text = (await self.output).decode()
        await self.process.wait()
        if self.process.returncode != 0:
            msg = (
                f"billing {' '.join(self.args)} exited {self.process.returncode} (standard "
                f"error in logs/billing.log):\n{text[-3000:]}"
            )
            raise BenchError(msg)
        return text

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else round(self.finished - self.started, 2)


# --- the run ----------------------------------------------------------------------------------


@dataclass
class PipelineBench:
    """One pipeline run on a broker and database: services, SMTP sink, sampling, figures.

    Use as an async context manager (``__aexit__`` stops the services and, unless ``keep``,
    drops the database and the topics), then ``await run()``.
    """

    workload: Workload
    kafka: str
    mongodb_url: str
    workdir: Path
    pdf_workers: int | None = None
    sample_seconds: float = 1.0
    stall_seconds: float = 180.0
    progress: Callable[[str], None] = print
    keep: bool = False
    bill_dir: Path = TMP
    namespace: str = field(default_factory=lambda: f"bench{uuid.uuid4().hex[:8]}")
    figures: dict[str, Any] = field(default_factory=dict)
    invoices: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ports = {name: free_port() for name in SERVICES}
        self.token = secrets.token_urlsafe(24)
        self.reader_token = secrets.token_urlsafe(24)
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.commands: list[Command] = []
        self.watch = ProcessWatch()
        self.samples: list[Counts] = []
        self._smtp: asyncio.Server | None = None
        self._smtp_port = 0
        self._sampler = LagSampler(self.kafka, f"{self.namespace}.")

    @property
    def topic_namespace(self) -> str:
        return f"{self.namespace}."

    def env(self) -> dict[str, str]:
        """The environment of every service and ``billing`` command of this run."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
        for prefix in ("BILLING_", *(f"BILLING_{s.upper()}_" for s in SERVICES)):
            env[f"{prefix}KAFKA_BOOTSTRAP_SERVERS"] = self.kafka
            env[f"{prefix}MONGODB_URL"] = self.mongodb_url
            env[f"{prefix}MONGODB_DATABASE"] = self.namespace
            env[f"{prefix}TOPIC_NAMESPACE"] = self.topic_namespace
        for name, port in self.ports.items():
            env[f"BILLING_{name.upper()}_HTTP_PORT"] = str(port)
        env["BILLING_NOTIFY_SMTP_HOST"] = "127.0.0.1"
        env["BILLING_NOTIFY_SMTP_PORT"] = str(self._smtp_port)
        env["BILLING_INGEST_ALLOW_ANONYMOUS"] = "true"  # a bench on loopback: no upstream tokens
        env["BILLING_INVOICING_API_TOKENS"] = json.dumps({self.token: "operator"})
        # notify reads the PDFs it attaches from invoicing's API (a document-reader token)
        env["BILLING_NOTIFY_INVOICING_URL"] = f"http://127.0.0.1:{self.ports['invoicing']}"
        env["BILLING_NOTIFY_INVOICING_TOKEN"] = self.reader_token
        env["BILLING_INVOICING_DOCUMENT_READER_TOKENS"] = self.reader_token
        if self.pdf_workers is not None:
            env["BILLING_INVOICING_PDF_WORKERS"] = str(self.pdf_workers)
        return env

    async def __aenter__(self) -> Self:
        from billing_devtools.mail_sink import MaildirSink, serve

        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.mail = MaildirSink(self.workdir / "mail")
        self._smtp = await serve(self.mail, "127.0.0.1", 0)
        self._smtp_port = self._smtp.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for command in self.commands:  # a command still waiting when the run failed
            if command.process.returncode is None:
                command.process.kill()
                await command.process.wait()
        await self.stop_services()
        await self._sampler.stop()
        if self._smtp is not None:
            self._smtp.close()
            await asyncio.wait_for(self._smtp.wait_closed(), 5)
        if not self.keep:
            await self.clean()

    async def start_services(self) -> None:
        import httpx

        for name in SERVICES:
            with (self.workdir / "logs" / f"{name}.log").open("ab") as log:
                self.processes[name] = await asyncio.create_subprocess_exec(
                    str(PYTHON), "-m", f"billing_{name}", env=self.env(), stdout=log, stderr=log
                )
        async with httpx.AsyncClient(timeout=2.0) as client:
            for name in SERVICES:
                for _ in range(1200):
                    if self.processes[name].returncode is not None:
                        text = (self.workdir / "logs" / f"{name}.log").read_text()
                        raise BenchError(f"{name} exited at start-up:\n{text[-3000:]}")
                    try:
                        url = f"http://127.0.0.1:{self.ports[name]}/health"
                        if (await client.get(url)).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    raise BenchError(f"{name} did not become healthy within 120 s")
                self.watch.add(name, self.processes[name].pid)

    async def stop_services(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.terminate()
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
        self.processes.clear()

    async def billing(self, *args: str, watch: bool = False) -> Command:
        """Start a ``billing`` command of this run: its standard output is kept, its standard
        error goes to ``logs/billing.log``; ``watch``: sample its RSS and CPU too."""
        with (self.workdir / "logs" / "billing.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                str(BILLING),
                *args,
                env=self.env() | {"COLUMNS": "200"},
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
            )
        assert process.stdout is not None
        output = asyncio.ensure_future(process.stdout.read())
        command = Command(args, process, output, time.monotonic())
        self.commands.append(command)

        def finished(_: object) -> None:
            command.finished = time.monotonic()

        output.add_done_callback(finished)
        if watch:
            name = "billing ingest" if args[0] == "ingest" else f"billing {' '.join(args[:2])}"
            self.watch.add(name, process.pid)
        return command

    async def sample(self) -> Counts:
        counts = await self._sampler.sample()
        self.samples.append(counts)
        self.watch.sample()
        return counts

    async def wait_until(
        self,
        stage: str,
        done: Callable[[Counts], bool],
        moving: Callable[[Counts], tuple[int, ...]],
        line: Callable[[Counts], str],
        commands: tuple[Command, ...] = (),
    ) -> Counts:
        """Sample until ``done``; fail if ``moving`` (the stage's counters) stands still for
        ``stall_seconds`` while not done, or if a command fails."""
        last_move, last_seen, last_print = time.monotonic(), None, 0.0
        while True:
            counts = await self.sample()
            for command in commands:
                if command.done and command.process.returncode not in (None, 0):
                    await command.result()  # raises with its output
            if done(counts):
                self.progress(f"  {stage}: {line(counts)}")
                return counts
            now = time.monotonic()
            if moving(counts) != last_seen:
                last_move, last_seen = now, moving(counts)
            elif now - last_move > self.stall_seconds:
                msg = (
                    f"{stage} stalled: nothing moved for {self.stall_seconds:.0f} s "
                    f"({line(counts)}); logs in {self.workdir / 'logs'}"
                )
                raise BenchError(msg)
            for name, process in self.processes.items():
                if process.returncode is not None:
                    raise BenchError(f"the {name} service exited with {process.returncode}")
            if now - last_print >= 5:
                self.progress(f"  {now - self.watch.started:7.1f} s  {stage}: {line(counts)}")
                last_print = now
            await asyncio.sleep(max(0.0, self.sample_seconds - (time.monotonic() - now)))

    async def run(self, *, ceilings: bool = True) -> dict[str, Any]:
        """The whole run; returns the figures (also kept in ``self.figures`` when it fails)."""
        w = self.workload
        self.figures = {
            "workload": {
                "lines": w.lines,
                "customers": w.customer_count,
                "profile": w.profile,
                "accounts": 4 * w.customer_count,
                "period": PERIOD,
            },
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
        bill = write_bill(w, self.bill_dir / f"pipeline-focus-{w.name}.csv")
        catalog = self.workdir / "catalog.yaml"
        catalog.write_text(yaml.safe_dump(catalog_document(w), sort_keys=False))
        # the harness's children are the services and commands, watched on their own
        self.watch.add("bench harness (sampling, SMTP sink)", os.getpid(), children=False)
        kafka_port = int(self.kafka.split(",")[0].rsplit(":", 1)[1])
        self.watch.add("kafka broker", listening_pid(kafka_port), children=False)
        mongo_port = urlsplit(self.mongodb_url).port or 27017
        self.watch.add("ferretdb", listening_pid(mongo_port), children=False)
        # resolved before the services start, so that they and the bare renderer use one count
        self.figures["pdf_workers"] = self._pdf_workers()
        await (await self.billing("topics", "create")).result()
        self.progress(f"starting the four services (namespace {self.namespace})...")
        await self.start_services()
        await (await self.billing("catalog", "apply", str(catalog))).result()
        await self._sampler.start()
        self.watch.restart()
        try:
            await self._bill_to_drafts(bill)
            await self._close()
        finally:  # from the first line read to the last invoice emailed
            self.figures["processes"] = self.watch.figures()
            self.write_samples(self.workdir / "samples.csv")
        self.invoices = await self.finalized_invoices()
        await self.stop_services()
        if ceilings:
            await self._bare_weasyprint()
            await self._raw_kafka()
        return self.figures

    def write_samples(self, path: Path) -> None:
        """Every sample of the run as CSV (seconds since the first; the counters of ``Counts``),
        to plot or to look at a stage's rate over time."""
        if not self.samples:
            return
        origin = self.samples[0].at
        names = [f.name for f in fields(Counts)]
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(names)
            for sample in self.samples:
                row = astuple(sample)
                writer.writerow([round(row[0] - origin, 3), *row[1:]])

    def _pdf_workers(self) -> int:
        from billing_invoicing.settings import InvoicingSettings

        if self.pdf_workers is None:
            self.pdf_workers = InvoicingSettings().pdf_workers  # the service's default
        return self.pdf_workers

    async def _bill_to_drafts(self, bill: Path) -> None:
        self.progress(f"billing ingest {bill.name} ({self.workload.lines:,} lines)...")
        started = time.monotonic()
        first = await self.sample()
        ingest = await self.billing("ingest", str(bill), "--json", watch=True)

        def drafted(c: Counts) -> bool:
            return ingest.done and c.rated == c.usage and c.invoiced == c.charges > 0

        def line(c: Counts) -> str:
            return (
                f"usage {c.usage:,}, rated {c.rated:,} (lag {c.usage - c.rated:,}), "
                f"on drafts {c.invoiced:,} (lag {c.charges - c.invoiced:,})"
            )

        try:
            last = await self.wait_until(
                "bill -> drafts",
                drafted,
                lambda c: (c.usage, c.rated, c.invoiced),
                line,
                (ingest,),
            )
        finally:  # what was measured, also when a stage stalled
            samples = [s for s in self.samples if s.at >= first.at]
            self.figures["stages"] = {
                "ingest": stage_rate([(s.at, s.usage) for s in samples])
                | {"command_seconds": ingest.seconds},
                "rating": stage_rate([(s.at, s.rated) for s in samples])
                | {"max_lag": max((s.usage - s.rated for s in samples), default=0)},
                "invoicing": stage_rate([(s.at, s.invoiced) for s in samples])
                | {"max_lag": max((s.charges - s.invoiced for s in samples), default=0)},
            }
        loaded = json.loads(await ingest.result())
        if loaded["rows_accepted"] != self.workload.lines:
            raise BenchError(f"ingest accepted {loaded['rows_accepted']} of {self.workload.lines}")
        records = last.usage - first.usage
        seconds = last.at - started
        self.figures["end_to_end"] = {
            "records": records,
            "seconds": round(seconds, 2),
            "records_per_second": round(records / seconds, 1),
        }

    async def _close(self) -> None:
        expected = self.workload.customer_count
        self.progress(f"billing invoices generate --period {PERIOD} ({expected:,} invoices)...")
        started = time.monotonic()
        before = await self.sample()
        close = await self.billing(
            "invoices", "generate", "--period", PERIOD, "--wait-seconds", "86400", watch=True
        )

        def line(c: Counts) -> str:
            finalized = c.finalized - before.finalized
            return f"finalized {finalized:,} of {expected:,}, emailed {len(self.mail.received):,}"

        finalized_at: list[float] = []

        def closed(c: Counts) -> bool:
            if c.finalized - before.finalized >= expected and not finalized_at:
                finalized_at.append(c.at)
            return bool(finalized_at) and c.emailed == c.finalized

        try:
            last = await self.wait_until(
                "close",
                closed,
                lambda c: (c.invoiced, c.finalized, c.emailed),
                line,
                (close,),
            )
        except BenchError:
            c = self.samples[-1]
            self.figures["close"] = {
                "invoices": expected,
                "finalized": c.finalized - before.finalized,
                "emails": len(self.mail.received),
                "seconds": round(c.at - started, 2),
            }
            raise
        await close.result()
        seconds = last.at - started
        self.figures["close"] = {
            "invoices": expected,
            "emails": len(self.mail.received),
            "seconds": round(seconds, 2),
            "finalized_seconds": round(finalized_at[0] - started, 2),
            "invoices_per_second": round(expected / seconds, 3),
        }

    async def finalized_invoices(self) -> list[dict[str, Any]]:
        """The finalized invoices of the period, each with its ``document``, from the invoicing
        HTTP API (as an operator)."""
        import httpx

        base = f"http://127.0.0.1:{self.ports['invoicing']}/v1/invoices"
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(headers=headers, timeout=120) as client:
            numbers: list[str] = []
            offset: int | None = 0
            while offset is not None:
                query: dict[str, str | int] = {
                    "period": PERIOD,
                    "status": "finalized",
                    "offset": offset,
                    "limit": 500,
                }
                page = (await client.get(base, params=query)).raise_for_status().json()
                numbers += [item["number"] for item in page["items"]]
                offset = page["next_offset"]
            limit = asyncio.Semaphore(4)

            async def one(number: str) -> dict[str, Any]:
                async with limit:
                    answer = await client.get(f"{base}/{number}")
                    return dict(answer.raise_for_status().json())

            return list(await asyncio.gather(*(one(n) for n in numbers)))

    async def _bare_weasyprint(self) -> None:
        """The same finalized documents, rendered by the invoicing renderer's pool alone, as
        their customers receive them: PDF/A-3 carrying its CII XML for a customer who receives
        Factur-X (the XML made beforehand, from the workload's catalog), else the plain PDF."""
        from billing_catalog.models import Catalog, EInvoiceFormat
        from billing_invoicing.adapters.einvoice import cii_xml
        from billing_invoicing.adapters.pdf import PdfRenderer
        from billing_invoicing.domain.einvoice import (
            einvoice_from_invoice,
            routing_for,
            seller_details_for,
        )
        from billing_invoicing.domain.invoice import InvoiceDocument

        documents = [InvoiceDocument.model_validate(i["document"]) for i in self.invoices]
        catalog = Catalog.model_validate(catalog_document(self.workload))
        customers = {c.id: c for c in catalog.customers}
        [entity] = catalog.invoicing_entities
        xml: dict[str, bytes] = {}
        for d in documents:
            customer = customers[d.customer_id]
            if EInvoiceFormat.FACTURX in customer.einvoice:
                made = einvoice_from_invoice(d, routing_for(customer), seller_details_for(entity))
                xml[d.invoice_id] = cii_xml(made)
        workers = self.pdf_workers or 1
        self.progress(
            f"bare WeasyPrint: {len(documents):,} invoices ({len(xml):,} Factur-X), "
            f"{workers} processes..."
        )
        async with PdfRenderer(max_workers=workers) as renderer:
            started = time.monotonic()
            await asyncio.gather(
                *(
                    renderer.render_facturx(d, xml[d.invoice_id])
                    if d.invoice_id in xml
                    else renderer.render(d)
                    for d in documents
                )
            )
            seconds = time.monotonic() - started
        bare = {
            "invoices": len(documents),
            "processes": workers,
            "seconds": round(seconds, 2),
            "invoices_per_second": round(len(documents) / seconds, 3),
        }
        self.figures["bare_weasyprint"] = bare
        close = self.figures["close"]["invoices_per_second"]
        self.figures["close_to_bare_ratio"] = round(close / bare["invoices_per_second"], 3)

    async def _raw_kafka(self) -> None:
        """The usage topic's bytes through a bare consumer -> producer, then consumed alone."""
        from billing_runtime.settings import ServiceSettings

        batch = ServiceSettings().batch_max_records
        total = self.samples[-1].usage
        self.progress(f"raw aiokafka pass-through of the {total:,} usage records...")
        through = await raw_pass_through(self.kafka, self.topic_namespace, total, batch)
        consume = await raw_consume(self.kafka, f"{self.topic_namespace}raw", total, batch)
        self.figures["raw_kafka"] = {"pass_through": through, "consume_only": consume}
        e2e = self.figures["end_to_end"]["records_per_second"]
        self.figures["end_to_end_to_raw_ratio"] = round(e2e / through["records_per_second"], 3)

    async def clean(self) -> None:
        """Drop the run's database and topics."""
        from aiokafka.admin import AIOKafkaAdminClient

        from billing_runtime.mongo import make_mongo_client
        from billing_schemas.topics import all_topic_names

        mongo = make_mongo_client(self.mongodb_url)
        try:
            await mongo.drop_database(self.namespace)
        finally:
            await mongo.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            names = [*all_topic_names(self.topic_namespace), f"{self.topic_namespace}raw"]
            doomed = [n for n in names if n in existing]
            if doomed:
                await admin.delete_topics(doomed)
        finally:
            await admin.close()


async def raw_pass_through(
    bootstrap: str, namespace: str, total: int, max_records: int
) -> dict[str, Any]:
    """Consume the usage topic in batches and republish each batch's bytes unchanged (aiokafka's
    own record batches, same partition, acks awaited, then commit): the ceiling of a consume ->
    publish stage on this broker and machine. Timed from the first batch to the last commit."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from billing_runtime.kafka import COMPRESSION, ensure_topics
    from billing_schemas.topics import Topic, topic_name

    target = f"{namespace}raw"
    await ensure_topics(bootstrap, [target])
    consumer = AIOKafkaConsumer(
        topic_name(Topic.USAGE_RECORDED, namespace),
        bootstrap_servers=bootstrap,
        group_id=f"{namespace}raw-pass",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=1 << 20,
        compression_type=COMPRESSION,
    )
    await consumer.start()
    await producer.start()
    done, started = 0, None
    try:
        while done < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
            if started is None and batches:
                started = time.monotonic()
            futures = []
            for tp, records in batches.items():
                out = producer.create_batch()
                for r in records:
                    headers = list(r.headers)
                    if (
                        out.append(key=r.key, value=r.value, timestamp=None, headers=headers)
                        is None
                    ):
                        futures.append(
                            await producer.send_batch(out, target, partition=tp.partition)
                        )
                        out = producer.create_batch()
                        out.append(key=r.key, value=r.value, timestamp=None, headers=headers)
                futures.append(await producer.send_batch(out, target, partition=tp.partition))
                done += len(records)
            await asyncio.gather(*futures)
            if batches:
                await consumer.commit()
        seconds = time.monotonic() - (started or time.monotonic())
    finally:
        await producer.stop()
        await consumer.stop()
    return {
        "records": done,
        "seconds": round(seconds, 2),
        "records_per_second": round(done / seconds, 1) if seconds else None,
    }


async def raw_consume(bootstrap: str, topic: str, total: int, max_records: int) -> dict[str, Any]:
    """Read ``total`` messages of ``topic`` with a bare consumer (no decoding, no commit)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    done, started = 0, None
    try:
        while done < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
            if started is None and batches:
                started = time.monotonic()
            done += sum(len(records) for records in batches.values())
        seconds = time.monotonic() - (started or time.monotonic())
    finally:
        await consumer.stop()
    return {
        "records": done,
        "seconds": round(seconds, 2),
        "records_per_second": round(done / seconds, 1) if seconds else None,
    }


# --- the command ------------------------------------------------------------------------------


def table(figures: dict[str, Any]) -> str:
    """The run's figures as a readable table."""

    def rate(part: dict[str, Any] | None, unit: str = "records/s") -> str:
        if not part or part.get("records_per_second", part.get("invoices_per_second")) is None:
            return "-"
        value = part.get("records_per_second", part.get("invoices_per_second"))
        seconds = part.get("seconds")
        return f"{value:>12,.1f} {unit}  ({seconds} s)"

    w = figures.get("workload", {})
    stages = figures.get("stages", {})
    raw = figures.get("raw_kafka", {})
    rows = [
        (
            "workload",
            f"{w.get('lines', 0):,} lines, {w.get('customers', 0):,} customers "
            f"({w.get('profile')}), {figures.get('pdf_workers')} PDF processes",
        ),
        ("ingest (billing ingest)", rate(stages.get("ingest"))),
        ("rating", rate(stages.get("rating"))),
        ("invoicing (onto drafts)", rate(stages.get("invoicing"))),
        ("end to end (file -> drafts)", rate(figures.get("end_to_end"))),
        ("raw Kafka pass-through", rate(raw.get("pass_through"))),
        ("raw Kafka consume", rate(raw.get("consume_only"))),
        ("close (finalized + emailed)", rate(figures.get("close"), "invoices/s")),
        ("bare WeasyPrint, same docs", rate(figures.get("bare_weasyprint"), "invoices/s")),
        ("close / bare WeasyPrint", str(figures.get("close_to_bare_ratio", "-"))),
        ("end to end / raw pass-through", str(figures.get("end_to_end_to_raw_ratio", "-"))),
    ]
    out = [f"{k:<32} {v}" for k, v in rows]
    out.append(f"{'process':<32} {'peak RSS MB':>12} {'CPU s':>9} {'cores':>7} {'% machine':>10}")
    for name, p in figures.get("processes", {}).items():
        out.append(
            f"{name:<32} {p['peak_rss_mb']:>12,.1f} {p['cpu_seconds']:>9,.1f} "
            f"{p['cores_used']:>7.2f} {p['machine_percent']:>10.1f}"
        )
    if figures.get("failed"):
        out.append(f"FAILED: {figures['failed']}")
    return "\n".join(out)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    workload = Workload(args.lines, args.customers, args.profile)
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    mongodb_url = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27117/")
    print(f"writing the bill and catalog ({workload.lines:,} lines)...", flush=True)
    run = PipelineBench(
        workload,
        kafka,
        mongodb_url,
        TMP / "pipeline-run",
        pdf_workers=args.pdf_workers,
        sample_seconds=args.sample_seconds,
        stall_seconds=args.stall_seconds,
        progress=lambda text: print(text, flush=True),
        keep=args.keep,
    )
    shutil.rmtree(run.workdir, ignore_errors=True)
    async with run:
        try:
            await run.run()
        except BenchError as exc:
            run.figures["failed"] = str(exc)
            run.figures.setdefault("processes", run.watch.figures())
    return run.figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=int(os.environ.get("LINES", "1000000")))
    parser.add_argument("--customers", type=int, default=int(os.environ.get("CUSTOMERS", "1000")))
    parser.add_argument(
        "--profile",
        choices=["spread", "single"],
        default=os.environ.get("PROFILE", "spread"),
        help="single: one customer holds every line",
    )
    parser.add_argument(
        "--pdf-workers", type=int, default=None, help="invoicing's PDF processes (default: its own)"
    )
    parser.add_argument("--sample-seconds", type=float, default=1.0)
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=float(os.environ.get("STALL_SECONDS", "300")),
        help="end the run when a stage's lag has not moved for this long",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and topics")
    args = parser.parse_args()
    figures = asyncio.run(bench(args))
    figures["targets"] = TARGETS
    figures["database"] = asyncio.run(
        database_backend(os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27117/"))
    )
    record_result("pipeline", figures)
    print()
    print(table(figures))
    if figures.get("failed"):
        sys.exit(1)


if __name__ == "__main__":
    main()
