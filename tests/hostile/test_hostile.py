"""The hostile-input suite (issue 16, point 3): every case of ``hostile_cases.py`` sent to the
running services, one set of service processes for the whole module.

Per case: the answer and its message as the table says; then every service still answers
/health, and the good inputs sent around the bad one were processed (accepted rows, accepted
events, a good bill right after a refused one, a good request right after a refused one).
The last test closes the month of what the good inputs billed and checks what a person sees:
the PDF shows the customer's HTML-like name as text, the invoice CSV defuses formulas, and the
invoice email goes to the Billing contacts only.
"""

from __future__ import annotations

import asyncio
import csv
import email
import email.policy
import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from einvoice_check import validate_issued
from hostile_cases import CASES, Case
from hostile_inputs import (
    CUSTOMER,
    FORMULA,
    FORMULA_TOO,
    INGEST_MAX_BYTES,
    INGEST_MAX_EVENTS,
    INVOICING_MAX_BYTES,
    OPERATOR_TOKEN,
    OTHER_SOURCE_TOKEN,
    OTHER_TOKEN,
    PDF_INJECTION,
    PERIOD,
    PROJECT,
    SOURCE,
    SOURCE_TOKEN,
    TOKENS,
    Bill,
    EventIn,
    Http,
    catalog,
    event,
    focus,
)
from pymongo import AsyncMongoClient
from pypdf import PdfReader

from billing_devtools.mail_sink import MaildirSink, serve
from billing_devtools.testing import TopicReader, produce
from billing_ingest.adapters.bill_registry import MongoBillRegistry
from billing_ingest.adapters.catalog_currency import MongoCatalogCurrencies
from billing_ingest.adapters.publisher import KafkaUsagePublisher
from billing_ingest.service.load_bill import NotABillError, load_bill
from billing_runtime.kafka import EventPublisher
from billing_schemas.topics import Topic, dead_letter_name, topic_name

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
SERVICES = ("ingest", "rating", "invoicing", "notify")
KAFKA_SECONDS = 90
READY_SECONDS = 60
DOCUMENT_READER_TOKEN = "hostile-document-reader-token-0123"


@dataclass
class Stack:
    """The four services of this module, and what the cases talk to them with."""

    namespace: str
    servers: str
    ports: dict[str, int]
    processes: dict[str, asyncio.subprocess.Process]
    logs: Path
    bills: Path
    mail: Path
    http: httpx.AsyncClient
    db: Any
    publisher: EventPublisher
    dead_letters: TopicReader
    recorded: TopicReader

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def log(self, service: str) -> str:
        return (self.logs / f"{service}.log").read_text(errors="replace")[-3000:]


def _env(
    namespace: str, servers: str, mongo: str, ports: dict[str, int], smtp: int
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    for prefix in ("BILLING_", *(f"BILLING_{s.upper()}_" for s in SERVICES)):
        env[f"{prefix}KAFKA_BOOTSTRAP_SERVERS"] = servers
        env[f"{prefix}MONGODB_URL"] = mongo
        env[f"{prefix}MONGODB_DATABASE"] = namespace
        env[f"{prefix}TOPIC_NAMESPACE"] = f"{namespace}."
    for name, port in ports.items():
        env[f"BILLING_{name.upper()}_HTTP_PORT"] = str(port)
    env["BILLING_NOTIFY_SMTP_HOST"] = "127.0.0.1"
    env["BILLING_NOTIFY_SMTP_PORT"] = str(smtp)
    env["BILLING_NOTIFY_INVOICING_URL"] = f"http://127.0.0.1:{ports['invoicing']}"
    env["BILLING_NOTIFY_INVOICING_TOKEN"] = DOCUMENT_READER_TOKEN
    env["BILLING_INVOICING_DOCUMENT_READER_TOKENS"] = DOCUMENT_READER_TOKEN
    env["BILLING_INGEST_ALLOW_ANONYMOUS"] = "false"
    env["BILLING_INGEST_API_TOKENS"] = json.dumps(
        {
            SOURCE_TOKEN: {
                "name": "region 1",
                "sources": [SOURCE],
                "providers": ["OpenStack"],
                "accounts": [PROJECT],
            },
            OTHER_SOURCE_TOKEN: {
                "name": "region 2",
                "sources": ["metering/region-2"],
                "providers": ["OpenStack"],
                "accounts": ["project-43"],
            },
        }
    )
    env["BILLING_INGEST_MAX_REQUEST_BYTES"] = str(INGEST_MAX_BYTES)
    env["BILLING_INGEST_MAX_EVENTS_PER_REQUEST"] = str(INGEST_MAX_EVENTS)
    env["BILLING_INVOICING_MAX_REQUEST_BYTES"] = str(INVOICING_MAX_BYTES)
    env["BILLING_INVOICING_API_TOKENS"] = json.dumps(
        {
            OPERATOR_TOKEN: "operator",
            TOKENS["customer"]: f"customer:{CUSTOMER}",
            OTHER_TOKEN: "customer:other-co",
        }
    )
    return env


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(infra: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """The four services as processes on the shared broker and database, under a namespace of
    their own, with the suite's catalog applied."""
    from conftest import free_port  # the root conftest (one per session)

    namespace = f"hostile{os.getpid()}{free_port()}"
    work = tmp_path_factory.mktemp("hostile")
    (logs := work / "logs").mkdir()
    (bills := work / "bills").mkdir()
    mail = work / "mail"
    smtp = await serve(MaildirSink(mail), "127.0.0.1", 0)
    ports = {name: free_port() for name in SERVICES}
    env = _env(
        namespace,
        infra.kafka_bootstrap_servers,
        infra.mongodb_url,
        ports,
        smtp.sockets[0].getsockname()[1],
    )
    processes: dict[str, asyncio.subprocess.Process] = {}
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    publisher = EventPublisher(infra.kafka_bootstrap_servers, "hostile-suite")
    ns = f"{namespace}."
    try:
        for name in SERVICES:
            with (logs / f"{name}.log").open("ab") as log:
                processes[name] = await asyncio.create_subprocess_exec(
                    str(PYTHON), "-m", f"billing_{name}", env=env, stdout=log, stderr=log
                )
        async with httpx.AsyncClient(timeout=60) as client:
            for name in SERVICES:
                await _healthy(client, ports[name], processes[name], logs / f"{name}.log")
            await publisher.start()
            stack = Stack(
                namespace,
                infra.kafka_bootstrap_servers,
                ports,
                processes,
                logs,
                bills,
                mail,
                client,
                mongo[namespace],
                publisher,
                TopicReader(
                    infra.kafka_bootstrap_servers, dead_letter_name(Topic.USAGE_SUBMITTED, ns)
                ),
                TopicReader(infra.kafka_bootstrap_servers, topic_name(Topic.USAGE_RECORDED, ns)),
            )
            applied = await client.put(
                stack.url("invoicing", "/v1/catalog"), json=catalog(), headers=_auth("operator")
            )
            assert applied.status_code == 200, applied.text
            async with stack.dead_letters, stack.recorded:
                pumps = [
                    asyncio.create_task(_pump(r)) for r in (stack.dead_letters, stack.recorded)
                ]
                try:
                    yield stack
                finally:
                    for pump in pumps:
                        pump.cancel()
                    await asyncio.gather(*pumps, return_exceptions=True)
    finally:
        await publisher.stop()
        for process in processes.values():
            if process.returncode is None:
                process.terminate()
        for process in processes.values():
            try:
                await asyncio.wait_for(process.wait(), 40)
            except TimeoutError:
                process.kill()
                await process.wait()
        await mongo.drop_database(namespace)
        await mongo.close()
        smtp.close()
        await smtp.wait_closed()


async def _pump(reader: TopicReader) -> None:
    """Keep reading the topic into ``reader.records`` (the cases look there)."""
    while True:
        await reader.wait_for(len(reader.records) + 1, within=24 * 3600)


async def _healthy(
    client: httpx.AsyncClient, port: int, process: asyncio.subprocess.Process, log: Path
) -> None:
    for _ in range(1200):
        if process.returncode is not None:
            raise RuntimeError(f"{log.stem} exited")  # its log is in the test's tmp folder
        try:
            if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{log.stem} never became healthy")


def _auth(who: str) -> dict[str, str]:
    token = TOKENS[who]
    return {"Authorization": f"Bearer {token}"} if token else {}


async def _answers_health(stack: Stack, name: str) -> None:
    """After a case: the service still runs and answers /health. On a busy machine its
    readiness can read 503 for a moment (the probe's own broker or database check timed out);
    that readiness comes back is checked after the table (:func:`_healthy_still`)."""
    assert stack.processes[name].returncode is None, f"{name} died:\n{stack.log(name)}"
    answer = await stack.http.get(stack.url(name, "/health"))
    assert answer.status_code in (200, 503), f"{name}: {answer.status_code} {answer.text}"
    assert answer.json()["service"] == name


async def _healthy_still(stack: Stack, *names: str) -> None:
    """The services (all by default) still run and are ready: /health answers 200, within
    ``READY_SECONDS`` (asked again while a probe times out); a crashed or hung service never
    answers."""
    for name in names or SERVICES:
        deadline = asyncio.get_running_loop().time() + READY_SECONDS
        while True:
            assert stack.processes[name].returncode is None, f"{name} died:\n{stack.log(name)}"
            answer = await stack.http.get(stack.url(name, "/health"))
            if answer.status_code == 200:
                break
            assert asyncio.get_running_loop().time() < deadline, f"{name}: {answer.text}"
            await asyncio.sleep(1)


# --- bills -----------------------------------------------------------------------------------


async def _load(stack: Stack, name: str, data: bytes) -> Any:
    path = stack.bills / name
    path.write_bytes(data)
    ns = f"{stack.namespace}."
    return await load_bill(
        path,
        publisher=KafkaUsagePublisher(stack.publisher, ns),
        registry=MongoBillRegistry(stack.db),
        catalog=MongoCatalogCurrencies(stack.db),
    )


async def _bill_case(stack: Stack, case: Case) -> None:
    bill: Bill = case.input
    data = await asyncio.to_thread(bill.make)
    if case.expect == "refused":
        with pytest.raises(NotABillError) as raised:
            await _load(stack, bill.name, data)
        assert case.message in str(raised.value)
        # never recorded, or (refused past its first rows) recorded as failed, never loaded
        stored = await stack.db["ingest_bills"].find_one({"file_name": bill.name})
        assert stored is None or stored["status"] == "failed", stored
        after = await _load(stack, f"after-{bill.name}.csv", focus(f"after-{case.id}")())
        assert after.summary.rows_accepted == 2  # the good bill right after it goes through
    else:
        result = await _load(stack, bill.name, data)
        summary = result.summary
        rejected = await MongoBillRegistry(stack.db).rejections(summary.bill_id)
        reasons = [r.reason for r in rejected]
        assert summary.rows_accepted == bill.good, reasons
        if case.expect == "loaded":
            assert reasons == []
        else:
            assert case.expect == "row rejected"
            assert any(case.message in reason for reason in reasons), reasons
    await _answers_health(stack, "rating")  # which rates what the bills published


# --- usage events ----------------------------------------------------------------------------


def _event_bytes(item: EventIn) -> bytes:
    if item.raw:
        return str(item.body).encode("utf-8", "surrogateescape")
    return json.dumps(item.body).encode()


async def _http_event_case(stack: Stack, case: Case) -> None:
    item: EventIn = case.input
    url = stack.url("ingest", "/v1/usage-events")
    headers = _auth(item.token) | {"Content-Type": "application/json"}
    if item.first_seen is not None:
        first = await stack.http.post(url, json=[item.first_seen], headers=headers)
        assert first.json()["results"][0]["verdict"] == "accepted", first.text
    good = [json.dumps(event(f"{case.id}-before")), json.dumps(event(f"{case.id}-after"))]
    body = f"[{good[0]}, {_event_bytes(item).decode('utf-8', 'surrogateescape')}, {good[1]}]"
    answer = await stack.http.post(url, content=body.encode(), headers=headers)
    assert answer.status_code == 200, answer.text
    before, verdict, after = answer.json()["results"]
    assert (before["verdict"], after["verdict"]) == ("accepted", "accepted"), answer.text
    assert verdict["verdict"] == case.expect, verdict
    assert case.message in (verdict["reason"] or ""), verdict
    await _answers_health(stack, "ingest")


async def _kafka_event_case(stack: Stack, case: Case) -> None:
    item: EventIn = case.input
    bad = _event_bytes(item)
    goods = [event(f"{case.id}-before"), event(f"{case.id}-after")]
    await produce(
        stack.servers,
        topic_name(Topic.USAGE_SUBMITTED, f"{stack.namespace}."),
        [
            (PROJECT.encode(), json.dumps(goods[0]).encode()),
            (PROJECT.encode(), bad),
            (PROJECT.encode(), json.dumps(goods[1]).encode()),
        ],
    )
    wanted = {g["id"] for g in goods}

    def seen() -> set[str]:
        return {json.loads(r.value)["correlation_id"] for r in stack.recorded.records} & wanted

    def letters() -> list[Any]:
        return [r for r in stack.dead_letters.records if r.value == bad]

    deadline = asyncio.get_running_loop().time() + KAFKA_SECONDS
    while seen() != wanted or not letters():
        if asyncio.get_running_loop().time() > deadline:
            msg = f"after {KAFKA_SECONDS} s: good events recorded {seen()}, dead letter {letters()}"
            raise AssertionError(msg)
        await asyncio.sleep(0.2)
    assert case.expect == "rejected"
    error = dict(letters()[0].headers)["x-error"].decode()
    assert case.message in error, error
    await _answers_health(stack, "ingest")


# --- whole requests --------------------------------------------------------------------------


_DEFAULT_TOKEN = {"ingest": "source", "invoicing": "operator"}


async def _request_case(stack: Stack, case: Case) -> None:
    request: Http = case.input
    content = request.content() if callable(request.content) else request.content
    answer = await stack.http.request(
        request.method,
        stack.url(request.service, request.path),
        headers=_auth(request.token or _DEFAULT_TOKEN[request.service]) | request.headers,
        json=request.json,
        content=content,
    )
    assert str(answer.status_code) == case.expect, answer.text[:2000]
    assert (
        case.message in answer.text.replace(" ", "").replace("\n", "")
        or case.message in answer.text
    ), answer.text[:2000]
    # a good request of the same service right after it is answered
    if request.service == "ingest":
        good = await stack.http.post(
            stack.url("ingest", "/v1/usage-events"),
            json=[event(f"{case.id}-good")],
            headers=_auth("source"),
        )
        assert good.json()["results"][0]["verdict"] == "accepted", good.text
    else:
        good = await stack.http.get(
            stack.url("invoicing", f"/v1/customers/{CUSTOMER}/contacts"), headers=_auth("customer")
        )
        assert good.status_code == 200, good.text
        assert "ap@hostile.example" in good.text
    await _answers_health(stack, request.service)


# --- running the table ------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[Stack, Case], Awaitable[None]]] = {
    "bill": _bill_case,
    "event-http": _http_event_case,
    "event-kafka": _kafka_event_case,
    "http": _request_case,
}
CONCURRENCY = 4
"""Cases in flight at once: the cases are independent (each its own ids, files and good
neighbours), and on a busy machine each spends its time waiting for the broker and database."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def outcomes(stack: Stack) -> dict[str, BaseException | None]:
    """Every case of the table run against the stack, several at a time; per case id, what
    its checks raised (None when they all held). Each test below reports one case."""
    slots = asyncio.Semaphore(CONCURRENCY)
    took: dict[str, float] = {}

    async def one(case: Case) -> BaseException | None:
        async with slots:
            started = asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(RUNNERS[case.target](stack, case), CASE_SECONDS)
            except Exception as exc:  # reported by the case's own test below
                return exc
            finally:
                took[case.id] = asyncio.get_running_loop().time() - started
            return None

    results = await asyncio.gather(*(one(case) for case in CASES))
    await _healthy_still(stack)  # every service ready again after the whole table
    slowest = sorted(took.items(), key=lambda item: -item[1])[:8]
    print("slowest cases:", ", ".join(f"{i} {s:.1f}s" for i, s in slowest))  # with -s
    return {case.id: result for case, result in zip(CASES, results, strict=True)}


CASE_SECONDS = 120


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_case(outcomes: dict[str, BaseException | None], case: Case) -> None:
    """One row of the table: its answer and message, /health after it, its good neighbours
    processed (see the module docstring)."""
    failure = outcomes[case.id]
    if failure is not None:
        raise failure


# --- what the good inputs billed -------------------------------------------------------------


async def test_the_good_inputs_are_invoiced_and_what_people_see_is_defused(
    stack: Stack, tmp_path: Path
) -> None:
    """Runs last: the good rows and events around every hostile case were rated and drafted;
    closing the month issues an invoice whose PDF prints the HTML-like customer name as
    text, whose CSV defuses formula cells, and whose email goes to the Billing contacts only
    (the contact with a display name full of address syntax gets exactly its own address)."""
    operator = _auth("operator")
    draft = stack.url("invoicing", f"/v1/invoices/{CUSTOMER}:{PERIOD}")

    async def drafted() -> set[str]:
        answer = await stack.http.get(draft, headers=operator)
        if answer.status_code != 200:
            return set()
        return {line["provider"] for line in answer.json().get("draft_lines") or []}

    deadline = asyncio.get_running_loop().time() + 90
    while await drafted() != {"AWS", "OpenStack"}:
        assert asyncio.get_running_loop().time() < deadline, await drafted()
        await asyncio.sleep(1)
    closing = await stack.http.post(
        stack.url("invoicing", f"/v1/periods/{PERIOD}/close"),
        json={"customer_id": CUSTOMER},
        headers=operator,
    )
    assert closing.status_code == 202, closing.text
    while not (invoice := (await stack.http.get(draft, headers=operator)).json())["number"]:
        assert asyncio.get_running_loop().time() < deadline + 90, invoice
        await asyncio.sleep(1)
    number = invoice["number"]

    # another customer asking for it by its number gets what a number never issued gets,
    # naming no one
    for route in ("", "/pdf", "/csv", "/dues", "/einvoice", "/einvoice?format=peppol"):
        other = await stack.http.get(
            stack.url("invoicing", f"/v1/invoices/{number}{route}"), headers=_auth("other")
        )
        assert other.status_code == 404, (route, other.text)
        assert CUSTOMER not in other.text, (route, other.text)

    pdf = await stack.http.get(
        stack.url("invoicing", f"/v1/invoices/{number}/pdf"), headers=operator
    )
    # kept beside the logs, to look at: tmp folder of the run, hostile0/invoice.pdf
    await asyncio.to_thread((stack.bills.parent / "invoice.pdf").write_bytes, pdf.content)
    text = " ".join(
        (page.extract_text() or "") for page in PdfReader(io.BytesIO(pdf.content)).pages
    )
    assert " ".join(PDF_INJECTION.split()) in " ".join(text.split()), text[:1500]

    csv_text = (
        await stack.http.get(stack.url("invoicing", f"/v1/invoices/{number}/csv"), headers=operator)
    ).text
    cells = [cell for row in csv.reader(io.StringIO(csv_text)) for cell in row]
    assert f"'{FORMULA}" in cells, csv_text[:2000]
    assert f"'{FORMULA_TOO}" in cells, csv_text[:2000]
    assert not [c for c in cells if c[:1] in ("=", "@", "+", "\t", "\r")], csv_text[:2000]

    deadline = asyncio.get_running_loop().time() + 90
    while not list(stack.mail.glob("*.eml")):
        assert asyncio.get_running_loop().time() < deadline, stack.log("notify")
        await asyncio.sleep(0.5)
    [path] = list(stack.mail.glob("*.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert sorted(a.addr_spec for a in message["To"].addresses) == [
        "ap@hostile.example",
        "mallory@hostile.example",
    ]
    assert message["Bcc"] is None
    assert message["Cc"] is None
    await _healthy_still(stack)

    # the invoice (its customer name and lines hostile), in the three e-invoice formats,
    # validated (issue 17)
    await validate_issued(stack.db, tmp_path, "hostile_good_inputs", expect=1)
