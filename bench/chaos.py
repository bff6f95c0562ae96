"""The fault campaign (``make chaos``): bill a month while crashing everything, then prove that
nothing was lost, nothing billed twice, every invoice is gapless and emailed exactly once.

One run, seeded (``--seed``) and so repeatable, on a private stack of its own (a Kafka broker and
a FerretDB started by ``scripts/infra.sh`` with their own ports and data under the run's folder,
so that restarting them disturbs nothing else):

1. the pipeline benchmark's catalog for C customers (tiered and plain price lists,
   subscriptions), each customer with a CUR account and an OpenStack project besides;
2. while the records flow: bill A (FOCUS) loaded, then loaded again; bill B (AWS CUR) loaded with
   its loader killed once mid-load and run again, then its restatement B2; upstream usage events
   over HTTP and over Kafka, with duplicates and conflicting copies. Meanwhile each service is
   SIGKILLed and restarted (``--kills`` times each, at seeded random moments), the Kafka broker
   is killed and restarted once, FerretDB once;
3. the close: ``billing invoices generate`` while invoicing is killed mid-close and notify
   mid-email, the SMTP server answers 451 for a while and then drops connections for a while;
4. the verdict: ``billing reconcile`` finds no unexplained difference; the invoice numbers are
   gapless; every invoice was emailed exactly once, to exactly its customer's Billing contacts,
   and notify's delivery log says sent once for each; the conflicting events were never billed;
   every dead letter is named.

A JSON summary (faults injected, records, invoices, differences, duration) is appended to
``bench/results/chaos.jsonl`` (``--results``). ``tests/e2e/test_chaos_e2e.py`` runs the same
campaign smaller in ``make test``. What each check means: docs/operations.md, "The fault
campaign".
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
import os
import random
import re
import shutil
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import orjson
import yaml
from bench_results import record_result
from chaos_workload import Events, chaos_catalog, make_events, write_cur_bills
from pipeline_bench import SERVICES, BenchError, PipelineBench
from pipeline_probes import free_port
from pipeline_workload import PERIOD, ROOT, Workload, write_bill

from billing_devtools.mail_sink import MaildirSink

INFRA = ROOT / "scripts" / "infra.sh"
STACKS = ROOT / "var" / "chaos"  # the private stacks' state (deleted when a campaign ends)
INVOICE_PREFIX = "BCR-"


class CampaignFailedError(AssertionError):
    """A check of the verdict failed (the message says which and with what)."""


# --- the private stack -------------------------------------------------------------------------


@dataclass
class PrivateStack:
    """A Kafka broker and a FerretDB of the campaign's own, started with ``scripts/infra.sh`` on
    free ports with their state under ``state``; each can be killed and started again. FerretDB
    runs on ``backend``: PostgreSQL by default, as the local stack does (a cluster of the
    campaign's own, whose files the ``postgres`` account must reach: ``state`` is under the
    repository's ``var/``, not a private temporary folder), or SQLite."""

    state: Path
    backend: str = "postgresql"
    ports: dict[str, int] = field(
        default_factory=lambda: {
            "kafka": free_port(),
            "kafka-controller": free_port(),
            "ferretdb": free_port(),
            "postgres": free_port(),
            "smtp": free_port(),
        }
    )

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    @property
    def mongodb_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.ports['ferretdb']}/"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
        return env | {
            "BILLING_INFRA_STATE": str(self.state),
            "BILLING_KAFKA_PORT": str(self.ports["kafka"]),
            "BILLING_KAFKA_CONTROLLER_PORT": str(self.ports["kafka-controller"]),
            "BILLING_MONGO_PORT": str(self.ports["ferretdb"]),
            "BILLING_SMTP_PORT": str(self.ports["smtp"]),
            "BILLING_POSTGRES_PORT": str(self.ports["postgres"]),
            "BILLING_FERRETDB_BACKEND": self.backend,
        }

    async def _infra(self, verb: str) -> None:
        process = await asyncio.create_subprocess_exec(
            "bash",
            str(INFRA),
            verb,
            env=self._env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            msg = f"scripts/infra.sh {verb} (private stack) failed:\n{out.decode()[-3000:]}"
            raise BenchError(msg)

    async def up(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        await self._infra("up")

    async def down(self, *, delete: bool = False) -> None:
        """Stop the broker, FerretDB and PostgreSQL; ``delete``: their data and logs too."""
        await self._infra("down")
        if delete:
            shutil.rmtree(self.state, ignore_errors=True)

    async def crash(self, name: str) -> None:
        """SIGKILL ``kafka`` or ``ferretdb``, as a crash would, and wait until it is gone."""
        pid = int((self.state / "run" / f"{name}.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        for _ in range(300):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            await asyncio.sleep(0.1)
        msg = f"{name} (pid {pid}) did not die"
        raise BenchError(msg)

    async def restart(self, name: str) -> None:
        """Crash ``name`` and start it again on the same data."""
        await self.crash(name)
        await self.up()


# --- the SMTP server that misbehaves on demand -------------------------------------------------


@dataclass
class FaultySink(MaildirSink):
    """The mail sink, which can answer every new message ``451`` (``tempfail``) or drop the
    connection (``drop``) before the message is sent, so the sender must try again later.
    ``armed``: answer until the next message, then turn to ``tempfail`` (from ``since``)."""

    mode: str = "ok"
    since: float = 0.0
    refused: Counter[str] = field(default_factory=Counter)

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        del session
        if self.mode == "armed":
            self.mode, self.since = "tempfail", time.monotonic()
        if self.mode == "tempfail":
            self.refused["451"] += 1
            return "451 4.3.0 Mail server temporarily unavailable (chaos)"
        if self.mode == "drop":
            self.refused["dropped"] += 1
            server.transport.abort()
            return "421 4.3.2 Closing connection (chaos)"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


@dataclass
class SmtpFaults:
    """The close's SMTP faults in turn, from the first email the close sends: 451 for
    ``seconds``, then dropped connections for ``seconds``, then answering again."""

    sink: FaultySink
    seconds: float
    note: Any
    phase: str = "before"
    since: float = 0.0

    @property
    def over(self) -> bool:
        return self.phase == "after"

    def step(self) -> None:
        now = time.monotonic()
        if self.phase == "before":
            self.phase, self.sink.mode = "armed", "armed"
        elif self.phase == "armed" and self.sink.mode == "tempfail":
            self.phase, self.since = "tempfail", self.sink.since
            self.note("smtp", "451 window", seconds=self.seconds)
        elif self.phase == "tempfail" and now - self.since > self.seconds:
            self.phase, self.since, self.sink.mode = "drop", now, "drop"
            self.note("smtp", "dropped connections window", seconds=self.seconds)
        elif self.phase == "drop" and now - self.since > self.seconds:
            self.phase, self.sink.mode = "after", "ok"
            self.note("smtp", "answering again")


# --- the campaign ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What a campaign bills and how hard it hits."""

    seed: int = 7
    focus_lines: int = 150_000
    cur_lines: int = 30_000
    events: int = 20_000
    customers: int = 100
    kills: int = 3  # per service
    flow_seconds: float = 240.0  # the window over which the flow's faults are spread
    smtp_fault_seconds: float = 20.0  # each of the 451 and the dropping windows
    backend: str = "postgresql"  # FerretDB's, as on the local stack (or "sqlite")

    @property
    def records(self) -> int:
        return self.focus_lines + self.cur_lines + self.events


@dataclass
class ChaosRun(PipelineBench):
    """A pipeline run (the benchmark's harness) with faults injected and a verdict at the end."""

    plan: Plan = field(default_factory=Plan)
    stack: PrivateStack | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    verdict: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rng = random.Random(self.plan.seed)
        self.started = time.monotonic()
        self._restarting: set[str] = set()

    def env(self) -> dict[str, str]:
        env = super().env()
        env["BILLING_NOTIFY_RETRY_BACKOFF_SECONDS"] = "1"
        env["BILLING_NOTIFY_RETRY_MAX_BACKOFF_SECONDS"] = "4"
        env["BILLING_NOTIFY_RETRY_POLL_SECONDS"] = "0.5"
        env["BILLING_NOTIFY_RETRY_LEASE_SECONDS"] = "30"
        env["BILLING_NOTIFY_RETRY_MAX_RETRIES"] = "1000"
        return env

    async def __aenter__(self) -> Self:
        from billing_devtools.mail_sink import serve

        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.mail: FaultySink = FaultySink(self.workdir / "mail")
        self._smtp = await serve(self.mail, "127.0.0.1", 0)
        self._smtp_port = self._smtp.sockets[0].getsockname()[1]
        return self

    def note(self, kind: str, target: str, **detail: Any) -> None:
        at = round(time.monotonic() - self.started, 1)
        self.faults.append({"at": at, "kind": kind, "target": target, **detail})
        self.progress(f"  {at:7.1f} s  fault: {kind} {target} {detail or ''}".rstrip())

    # -- services ---------------------------------------------------------------------------

    async def start_service(self, name: str) -> None:
        import httpx

        with (self.workdir / "logs" / f"{name}.log").open("ab") as log:
            self.processes[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"billing_{name}", env=self.env(), stdout=log, stderr=log
            )
        url = f"http://127.0.0.1:{self.ports[name]}/health"
        async with httpx.AsyncClient(timeout=2.0) as client:
            for _ in range(3000):
                if self.processes[name].returncode is not None:
                    text = (self.workdir / "logs" / f"{name}.log").read_text()[-3000:]
                    raise BenchError(f"{name} exited at start-up:\n{text}")
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise BenchError(f"{name} did not become healthy within 300 s")

    async def kill_service(self, name: str, down_seconds: float) -> None:
        """SIGKILL a service, leave it down a moment, start it again."""
        process = self.processes[name]
        self._restarting.add(name)
        try:
            process.kill()
            await process.wait()
            self.note("sigkill", name, down_seconds=round(down_seconds, 1))
            await asyncio.sleep(down_seconds)
            await self.start_service(name)
        finally:
            self._restarting.discard(name)

    async def restart_infra(self, name: str) -> None:
        assert self.stack is not None
        self.note("restart", name)
        await self.stack.restart(name)

    async def run_faults(self, faults: list[tuple[float, str, str]]) -> None:
        """Inject ``(seconds from now, kind, target)`` faults in order."""
        origin = time.monotonic()
        for at, kind, target in sorted(faults):
            await asyncio.sleep(max(0.0, origin + at - time.monotonic()))
            if kind == "sigkill":
                await self.kill_service(target, self.rng.uniform(0.5, 3.0))
            elif kind == "restart":
                await self.restart_infra(target)

    def flow_faults(self) -> list[tuple[float, str, str]]:
        """Each service killed ``kills`` times (notify's last kills come at the close), the
        broker and the database restarted once, at seeded moments of the flow window."""
        window = self.plan.flow_seconds
        faults = [(self.rng.uniform(2, window), "restart", "kafka")]
        faults.append((self.rng.uniform(2, window), "restart", "ferretdb"))
        for name in ("ingest", "rating", "invoicing"):
            faults += [
                (self.rng.uniform(1, window), "sigkill", name) for _ in range(self.plan.kills)
            ]
        return faults

    # -- what is billed ---------------------------------------------------------------------

    async def billing_retried(self, *args: str, attempts: int = 8) -> str:
        """A ``billing`` command, run again after a failure (a broker or database restart may
        fail it), as an operator would; its output."""
        for attempt in range(1, attempts + 1):
            command = await self.billing(*args)
            try:
                return await command.result()
            except BenchError as exc:
                if attempt == attempts:
                    raise
                self.progress(f"  billing {args[0]} failed (attempt {attempt}), again: {exc}"[:300])
                await asyncio.sleep(2)
        raise AssertionError("unreachable")

    async def load_focus(self, bill: Path) -> list[dict[str, Any]]:
        first = json.loads(await self.billing_retried("ingest", str(bill), "--json"))
        again = json.loads(await self.billing_retried("ingest", str(bill), "--json"))
        return [first, again]

    async def load_cur(self, original: Path, restated: Path) -> list[dict[str, Any]]:
        loader = await self.billing("ingest", str(original), "--json", "--format", "aws-cur")
        # killed mid-load: once ingest's registry says the bill is being processed (the loader
        # has begun publishing its lines), not after a fixed delay, which a quick start-up of
        # the command can outrun on a small bill
        await self.until_processing(original.name, loader.process)
        await asyncio.sleep(self.rng.uniform(0.0, 0.3))
        if loader.process.returncode is None:
            loader.process.kill()
            self.note("sigkill", "billing ingest (CUR bill)")
        await loader.process.wait()
        loads = [json.loads(await self.billing_retried("ingest", str(original), "--json"))]
        loads.append(json.loads(await self.billing_retried("ingest", str(restated), "--json")))
        return loads

    async def until_processing(self, file_name: str, loader: asyncio.subprocess.Process) -> None:
        """Wait until ingest's registry holds ``file_name`` in status ``processing`` (or the
        loader has ended), looking every 20 ms."""
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.mongodb_url)
        try:
            bills = client[self.namespace]["ingest_bills"]
            query = {"file_name": file_name, "status": "processing"}
            while loader.returncode is None:
                if await bills.find_one(query, {"_id": 1}) is not None:
                    return
                await asyncio.sleep(0.02)
        finally:
            await client.close()

    async def send_http(self, events: list[dict[str, Any]]) -> Counter[str]:
        """POST the events in batches of 200, each batch again until it gets its verdicts (the
        service may be down: an upstream system retries)."""
        import httpx

        verdicts: Counter[str] = Counter()
        url = f"http://127.0.0.1:{self.ports['ingest']}/v1/usage-events"
        async with httpx.AsyncClient(timeout=30) as client:
            for start in range(0, len(events), 200):
                batch = events[start : start + 200]
                for _ in range(600):
                    try:
                        answer = await client.post(url, json=batch)
                        if answer.status_code == 200:
                            verdicts.update(r["verdict"] for r in answer.json()["results"])
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.5)
                else:
                    raise BenchError("the usage-events API never answered for 5 minutes")
        return verdicts

    async def send_kafka(self, events: list[dict[str, Any]]) -> int:
        """Publish the events on the usage-submitted topic (acks=all, idempotent producer),
        a chunk again when the broker is away."""
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        from billing_schemas.topics import Topic, topic_name

        topic = topic_name(Topic.USAGE_SUBMITTED, self.topic_namespace)
        sent = 0
        for start in range(0, len(events), 500):
            chunk = events[start : start + 500]
            for _ in range(120):
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.kafka, acks="all", enable_idempotence=True
                )
                try:
                    await producer.start()
                    futures = [
                        await producer.send(
                            topic, orjson.dumps(e), key=f"{e['source']}|{e['id']}".encode()
                        )
                        for e in chunk
                    ]
                    await asyncio.gather(*futures)
                    sent += len(chunk)
                    break
                except (KafkaError, OSError):
                    await asyncio.sleep(1)
                finally:
                    await producer.stop()
            else:
                raise BenchError("the broker did not take the usage events for 2 minutes")
        return sent

    async def wait_quiet(self) -> None:
        """``billing wait`` (no consumer lag), run again while a fault is still being repaired."""
        while self._restarting:  # noqa: ASYNC110 - a set of names, polled
            await asyncio.sleep(0.5)
        await self.billing_retried("wait", "--seconds", "1800")

    # -- the campaign -----------------------------------------------------------------------

    async def campaign(self) -> dict[str, Any]:
        plan = self.plan
        workload = Workload(plan.focus_lines, plan.customers)
        self.figures = {"plan": plan.__dict__ | {"records": plan.records}, "period": PERIOD}
        bill_a = write_bill(workload, self.workdir / "bills" / f"chaos-focus-{workload.name}.csv")
        cur = write_cur_bills(self.rng, plan.cur_lines, plan.customers, self.workdir / "bills")
        events = make_events(self.rng, plan.events, plan.customers)
        catalog = self.workdir / "catalog.yaml"
        catalog.write_text(yaml.safe_dump(chaos_catalog(workload), sort_keys=False))

        await self.billing_retried("topics", "create")
        self.progress(f"starting the four services (namespace {self.namespace})...")
        for name in SERVICES:
            await self.start_service(name)
        await self.billing_retried("catalog", "apply", str(catalog))

        self.progress(f"the flow: {plan.records:,} records while faults land...")
        faults = asyncio.ensure_future(self.run_faults(self.flow_faults()))
        focus, curs, http, kafka = await asyncio.gather(
            self.load_focus(bill_a),
            self.load_cur(cur.original, cur.restated),
            self.send_http(events.http),
            self.send_kafka(events.kafka),
        )
        await faults
        await self.wait_quiet()
        self.figures["loads"] = {
            "focus": focus,
            "cur": curs,
            "cur_restatement": {
                "dropped": cur.dropped,
                "repriced": cur.repriced,
                "added": cur.added,
            },
        }
        self.figures["events"] = {
            "distinct": events.distinct,
            "duplicates_sent": events.duplicates,
            "conflicts_sent": events.conflicts,
            "http_verdicts": dict(http),
            "kafka_sent": kafka,
        }
        self.progress(f"  flow done at {time.monotonic() - self.started:.0f} s")

        await self.close_with_faults()
        await self.wait_quiet()
        await self.resolve_uncertain_emails()
        try:
            await self.check(events)
        finally:
            self.progress(f"verdict: {json.dumps(self.verdict)}")
        self.figures["faults"] = self.faults
        self.figures["seconds"] = round(time.monotonic() - self.started, 1)
        return self.figures

    async def close_with_faults(self) -> None:
        """``billing invoices generate`` while invoicing is killed (a few seconds in, while it
        finalizes and renders) and notify (spread over the emails), and the SMTP server refuses
        (451), then drops connections, each for ``smtp_fault_seconds`` from the first email."""
        expected = self.plan.customers
        self.progress(f"the close: {expected} invoices while faults land...")
        close = await self.billing(
            "invoices", "generate", "--period", PERIOD, "--wait-seconds", "3600"
        )
        # notify's kills when these many invoices have been emailed
        notify_at = [expected * (k + 1) // (self.plan.kills + 2) for k in range(self.plan.kills)]
        smtp = SmtpFaults(self.mail, self.plan.smtp_fault_seconds, self.note)
        kill_invoicing_at = time.monotonic() + self.rng.uniform(1.0, 5.0)  # while it finalizes
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            emailed = self.invoice_mail_count()
            if kill_invoicing_at and time.monotonic() >= kill_invoicing_at:
                kill_invoicing_at = 0.0
                await self.kill_service("invoicing", self.rng.uniform(0.5, 2.0))
            smtp.step()
            if notify_at and emailed >= notify_at[0]:
                notify_at.pop(0)
                await self.kill_service("notify", self.rng.uniform(0.5, 2.0))
            if close.done and smtp.over and not notify_at:
                break
        else:
            emailed = self.invoice_mail_count()
            raise BenchError(f"the close did not end within an hour ({emailed} emailed)")
        await close.result()
        await self.wait_emails_settled(expected)

    async def wait_emails_settled(self, expected: int) -> None:
        """Until each invoice's email is settled in notify's log: sent, or uncertain (notify
        stopped after the data went out; ``resolve_uncertain_emails`` deals with those)."""
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            settled = [
                e
                for e in await self.mail_log()
                if e["kind"] == "invoice-finalized" and e["status"] in ("sent", "uncertain")
            ]
            if len(settled) >= expected:
                return
            await asyncio.sleep(3)
        msg = f"the invoice emails did not settle within 30 minutes ({self.invoice_mail_count()})"
        raise BenchError(msg)

    async def mail_log(self) -> list[dict[str, Any]]:
        command = await self.billing("mail", "log", "--json", "--limit", "100000")
        return list(json.loads((await command.output).decode()))

    async def resolve_uncertain_emails(self) -> None:
        """What docs/operations.md asks an operator to do with an ``uncertain`` email (notify
        stopped after the data went out): look whether the recipient got it (here: the mail
        sink), and ``billing mail resend`` it if not; then wait until it is sent."""
        received = {n for path in self.mail.received for n in invoice_numbers_in(path)}
        uncertain = [e for e in await self.mail_log() if e["status"] == "uncertain"]
        lost = [e for e in uncertain if e["invoice_number"] not in received]
        self.verdict["uncertain_emails"] = {
            "uncertain": len(uncertain),
            "arrived_anyway": len(uncertain) - len(lost),
            "resent_by_the_operator": len(lost),
        }
        for entry in lost:
            self.note("operator", "billing mail resend", invoice=entry["invoice_number"])
            await self.billing_retried("mail", "resend", entry["message_id"])
        ids = {e["message_id"] for e in lost}
        for _ in range(600):
            if not ids:
                return
            ids -= {e["message_id"] for e in await self.mail_log() if e["status"] == "sent"}
            await asyncio.sleep(1)
        raise BenchError(f"the resent emails were not sent within 10 minutes: {sorted(ids)}")

    def invoice_mail_count(self) -> int:
        return sum(1 for path in self.mail.received if invoice_numbers_in(path))

    # -- the verdict ------------------------------------------------------------------------

    async def check(self, events: Events) -> None:
        """Every check of the verdict; the failures are collected, then raised together."""
        failures: list[str] = []
        report = json.loads(
            (await (await self.billing("reconcile", "--period", PERIOD, "--json")).output).decode()
        )
        unexplained = [d for d in report["differences"] if not d["explained"]]
        if unexplained:
            failures.append(f"reconcile: {len(unexplained)} unexplained: {unexplained[:5]}")
        counts = report["counts"]
        self.verdict["reconcile"] = {
            "reconciles": report["reconciles"],
            "counts": counts,
            "differences": len(report["differences"]),
            "explained": [d["what"] for d in report["differences"] if d["explained"]][:20],
        }
        if counts.get("upstream_accepted") != events.distinct:
            failures.append(
                f"{events.distinct} distinct events sent, {counts.get('upstream_accepted')} billed"
            )

        invoices = await self.finalized_invoices()
        numbers = sorted(i["number"] for i in invoices)
        self.verdict["invoices"] = len(numbers)
        if len(numbers) != self.plan.customers:
            failures.append(f"{len(numbers)} invoices finalized, {self.plan.customers} expected")
        sequence = [int(n.rsplit("-", 1)[1]) for n in numbers]
        if sequence != list(range(1, len(sequence) + 1)):
            failures.append(f"invoice numbers not gapless: {numbers[:3]}..{numbers[-3:]}")

        failures += self.check_emails(invoices)
        failures += await self.check_delivery_log(numbers)
        dead = await self.dead_letters()
        self.verdict["dead_letters"] = dead
        explained_dead = counts.get("records_dead_lettered", 0)
        usage_dead = sum(n for topic, n in dead.items() if "usage.recorded" in topic)
        if usage_dead > explained_dead:
            failures.append(f"dead letters on the usage topic not named by reconcile: {dead}")
        self.figures["verdict"] = self.verdict
        if failures:
            raise CampaignFailedError("the campaign's verdict failed:\n- " + "\n- ".join(failures))

    def check_emails(self, invoices: list[dict[str, Any]]) -> list[str]:
        """Each invoice emailed exactly once, to exactly its customer's Billing contacts."""
        sent: dict[str, list[set[str]]] = defaultdict(list)
        for path in self.mail.received:
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            delivered = {str(v).lower() for v in message.get_all("Delivered-To") or []}
            for number in invoice_numbers_in(path):
                sent[number].append(delivered)
        failures = []
        twice = {n: len(s) for n, s in sent.items() if len(s) > 1}
        never = [i["number"] for i in invoices if i["number"] not in sent]
        wrong = [
            i["number"]
            for i in invoices
            if i["number"] in sent and sent[i["number"]][0] != {f"ap@{i['customer_id']}.example"}
        ]
        if twice:
            failures.append(f"invoices emailed more than once: {dict(list(twice.items())[:5])}")
        if never:
            failures.append(f"invoices never emailed: {never[:5]} ({len(never)})")
        if wrong:
            failures.append(f"invoices emailed to other addresses: {wrong[:5]}")
        self.verdict["emails"] = {
            "invoice_emails": sum(len(s) for s in sent.values()),
            "smtp_refused": dict(self.mail.refused),
        }
        return failures

    async def check_delivery_log(self, numbers: list[str]) -> list[str]:
        """notify's delivery log: one ``sent`` invoice email per invoice, none still pending."""
        log = json.loads(
            (
                await (await self.billing("mail", "log", "--json", "--limit", "100000")).output
            ).decode()
        )
        entries = log if isinstance(log, list) else log.get("deliveries", [])
        sent = Counter(
            e.get("invoice_number")
            for e in entries
            if e.get("kind") == "invoice-finalized" and e.get("status") == "sent"
        )
        pending = [e for e in entries if e.get("status") != "sent"]
        self.verdict["delivery_log"] = {"entries": len(entries), "pending": len(pending)}
        failures = []
        off = [n for n in numbers if sent.get(n) != 1]
        if off:
            failures.append(f"delivery log not 'sent once' for {off[:5]} ({len(off)})")
        if pending:
            failures.append(f"deliveries not sent: {pending[:3]}")
        return failures

    async def dead_letters(self) -> dict[str, int]:
        """How many records each dead-letter topic of the run holds."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        from billing_runtime.lag import topic_partitions

        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(self.topic_namespace)]
            dlqs = [t for t in names if t.endswith(".dlq")]
            partitions = await topic_partitions(admin, dlqs) if dlqs else []
        finally:
            await admin.close()
        consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka, enable_auto_commit=False)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(list(partitions)) if partitions else {}
        finally:
            await consumer.stop()
        totals: Counter[str] = Counter()
        for tp, end in ends.items():
            totals[tp.topic] += end
        return {t: n for t, n in totals.items() if n}


INVOICE_PDF = re.compile(rf"({re.escape(INVOICE_PREFIX)}\d{{4}}-\d{{6}})\.pdf")


def invoice_numbers_in(path: Path) -> list[str]:
    """The invoice numbers whose PDF an email carries (its attachments' file names)."""
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    names = [part.get_filename() or "" for part in message.iter_attachments()]
    return [m.group(1) for name in names if (m := INVOICE_PDF.fullmatch(name))]


async def run_campaign(
    plan: Plan,
    workdir: Path,
    *,
    keep: bool = False,
    progress: Any = print,
    inspect: Callable[[str, str], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """A whole campaign on its private stack (started and stopped here). ``inspect``, when
    given, is awaited with the stack's MongoDB URL and the run's database name after a passed
    verdict, while the stack still runs (the e2e test validates the issued e-invoices there)."""
    stack = PrivateStack(STACKS / f"{workdir.name}-{uuid.uuid4().hex[:8]}", backend=plan.backend)
    progress(f"private stack: FerretDB on {plan.backend}, state under {stack.state}")
    await stack.up()
    passed = False
    try:
        async with ChaosRun(
            workload=Workload(plan.focus_lines, plan.customers),
            kafka=stack.kafka,
            mongodb_url=stack.mongodb_url,
            workdir=workdir,
            progress=progress,
            keep=True,
            plan=plan,
            stack=stack,
            stall_seconds=600,
        ) as run:
            try:
                figures = await run.campaign()
                if inspect is not None:
                    await inspect(stack.mongodb_url, run.namespace)
                passed = True
                return figures
            finally:
                for name in list(run.processes):
                    if run.processes[name].returncode is None:
                        run.processes[name].terminate()
    finally:
        if not keep:
            # a failed campaign keeps the stack's data and logs to look at
            await stack.down(delete=passed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=Plan.seed)
    parser.add_argument("--focus-lines", type=int, default=Plan.focus_lines)
    parser.add_argument("--cur-lines", type=int, default=Plan.cur_lines)
    parser.add_argument("--events", type=int, default=Plan.events)
    parser.add_argument("--customers", type=int, default=Plan.customers)
    parser.add_argument("--kills", type=int, default=Plan.kills)
    parser.add_argument("--flow-seconds", type=float, default=Plan.flow_seconds)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default=Plan.backend)
    parser.add_argument(
        "--no-record", action="store_true", help="do not append to bench/results/chaos.jsonl"
    )
    parser.add_argument("--keep", action="store_true", help="leave the private stack running")
    args = parser.parse_args()
    plan = Plan(
        seed=args.seed,
        focus_lines=args.focus_lines,
        cur_lines=args.cur_lines,
        events=args.events,
        customers=args.customers,
        kills=args.kills,
        flow_seconds=args.flow_seconds,
        backend=args.backend,
    )
    workdir = ROOT / "bench" / "tmp" / f"chaos-{plan.seed}-{int(time.time())}"
    started = time.monotonic()
    result: dict[str, Any] = {"plan": plan.__dict__}
    try:
        result = asyncio.run(run_campaign(plan, workdir, keep=args.keep))
        result["passed"] = True
    except CampaignFailedError as exc:
        result |= {"passed": False, "failure": str(exc)}
        print(exc, file=sys.stderr)
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    if args.no_record:
        print(json.dumps(result, indent=2))
    else:
        record_result("chaos", result)
    sys.exit(0 if result.get("passed") else 1)


if __name__ == "__main__":
    main()
