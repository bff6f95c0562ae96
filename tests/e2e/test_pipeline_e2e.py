"""The walking skeleton end to end: FOCUS bill -> ingest -> rating -> invoicing -> notify.

Real processes, the real Kafka broker, the real MongoDB-wire database, a real SMTP server.
Expected totals are computed independently from the sample CSV and the demo catalog.
"""

from __future__ import annotations

import asyncio
import csv
import email
import email.policy
import io
import json
import signal
from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from einvoice_check import validate_issued
from focus_checks import focus_12_problems, focus_validator_failures
from pymongo import AsyncMongoClient
from pypdf import PdfReader

from billing_runtime.files import FileCollection
from billing_schemas.documents import INVOICE_PDF_FILES

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "demo" / "focus_sample.csv"
CATALOG = ROOT / "demo" / "catalog.yaml"
PERIOD = "2024-09"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def expected_invoices() -> dict[str, dict[str, Any]]:
    """Per customer: total and the billing contacts, straight from the files.

    Hand rule (docs/rating.md, default rebilling policy): each row's billed cost x (1 + the
    customer's one global markup), except credits, passed on at cost; summed exactly, rounded
    half-up once. (Commitment-covered rows carry no owner in FOCUS, so they pass through at
    their billed cost, 0 in the sample.) Plus the prorated subscription fee, less the prorated
    infrastructure it includes (below).
    """
    catalog = yaml.safe_load(CATALOG.read_text())
    owner = {
        (a["provider"], a["account_id"]): c["id"]
        for c in catalog["customers"]
        for a in c["accounts"]
    }
    markups = {}
    for price_list in catalog["price_lists"]:
        [version] = price_list["versions"]
        [rule] = version["rules"]
        assert rule["kind"] == "markup"
        assert not set(rule) - {"kind", "percent"}  # global: the hand rule below holds
        markups[price_list["id"]] = Decimal(rule["percent"])
    markup = {c["id"]: markups[c["price_list"]] for c in catalog["customers"]}
    price: dict[str, Decimal] = defaultdict(Decimal)
    with SAMPLE.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["BillingPeriodStart"].startswith(PERIOD):
                customer = owner[row["ProviderName"], row["SubAccountId"]]
                cost = Decimal(row["BilledCost"])
                if row["ChargeCategory"] == "Credit":
                    price[customer] += cost
                else:
                    price[customer] += cost * (100 + markup[customer]) / 100
    # Contoso's subscription (the one in the demo catalog): Managed Cloud, fee 300.00 with 15.00
    # of infrastructure included, from 2024-09-10: 21 of September's 30 days, prorated by day:
    # fee 300 x 21/30 = 210.00, included 15 x 21/30 = 10.50 (docs/catalog.md, "Proration").
    # Its cloud charges (16.99) exceed 10.50: 10.50 is netted, the rest billed (step 6).
    [plan] = catalog["plans"]
    assert (plan["id"], plan["fee"], plan["included_infrastructure"]) == (
        "managed-cloud",
        "300.00",
        "15.00",
    )
    subscribed = {
        c["id"]: [(s["plan"], s["start"]) for s in c.get("subscriptions", [])]
        for c in catalog["customers"]
    }
    assert subscribed == {"northwind": [], "contoso": [("managed-cloud", date(2024, 9, 10))]}
    fee = {"northwind": Decimal(0), "contoso": Decimal("210.00")}
    included = {"northwind": Decimal(0), "contoso": Decimal("10.50")}
    out = {}
    for c in catalog["customers"]:
        cloud = price[c["id"]]
        exact = fee[c["id"]] + cloud - min(max(cloud, Decimal(0)), included[c["id"]])
        total = exact.quantize(Decimal("0.01"), ROUND_HALF_UP)
        billing = sorted(x["email"] for x in c["contacts"] if "Billing" in x["roles"])
        out[c["id"]] = {"name": c["name"], "total": total, "billing": billing}
    return out


def mails(directory: Path) -> list[EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(directory.glob("*.eml"))
    ]


async def wait_for(predicate: Any, what: str, seconds: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def finalized_invoices(pipeline: Any) -> list[dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pipeline.infra.mongodb_url)
    try:
        db = client[pipeline.namespace]
        docs = [d async for d in db["invoicing_invoices"].find({"period": PERIOD})]
        files = FileCollection(db[INVOICE_PDF_FILES])
        for doc in docs:
            if doc.get("pdf_file_id"):
                doc["pdf"] = await files.get(doc["pdf_file_id"])
        return docs
    finally:
        await client.close()


async def validate_einvoices(pipeline: Any, work: Path, test_name: str) -> None:
    """Both invoices the test issued, in the three e-invoice formats, validated (issue 17)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pipeline.infra.mongodb_url)
    try:
        await validate_issued(client[pipeline.namespace], work, test_name, expect=2)
    finally:
        await client.close()


def assert_invoices_and_emails(docs: list[dict[str, Any]], inbox: list[EmailMessage]) -> None:
    expected = expected_invoices()
    assert sorted(d["customer_id"] for d in docs) == sorted(expected)
    assert all(d["status"] == "finalized" for d in docs)
    numbers = sorted(d["number"] for d in docs)
    assert len(set(numbers)) == 2
    assert all(n.startswith("CCR-") for n in numbers)
    assert [n[-6:] for n in numbers] == ["000001", "000002"]  # gapless
    assert len(inbox) == 2, [m["Subject"] for m in inbox]
    for doc in docs:
        want = expected[doc["customer_id"]]
        total = Decimal(doc["document"]["total"])
        assert total == want["total"]
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(doc["pdf"])).pages)
        assert want["name"] in text
        assert doc["number"] in text
        assert f"{total:,.2f}" in text
        [mail] = [m for m in inbox if doc["number"] in str(m["Subject"])]
        recipients = sorted(a.addr_spec for a in mail["To"].addresses)
        assert recipients == want["billing"]
        assert f"{total:,.2f}" in str(mail["Subject"]) + mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        [attachment] = list(mail.iter_attachments())
        assert attachment.get_content_type() == "application/pdf"
        assert attachment.get_content() == doc["pdf"]


async def run_demo_flow(pipeline: Any) -> None:
    await pipeline.billing("topics", "create")
    await pipeline.billing("catalog", "apply", str(CATALOG))
    out = await pipeline.billing("ingest", str(SAMPLE), "--json")
    loaded = json.loads(out)
    assert (loaded["rows_read"], loaded["rows_accepted"], loaded["rows_rejected"]) == (
        1000,
        1000,
        0,
    )
    shown = json.loads(await pipeline.billing("bills", "show", loaded["bill_id"], "--json"))
    assert shown["bill"]["billed_cost_totals"] == loaded["billed_cost_totals"]
    assert shown["rejected_rows"] == []
    assert loaded["bill_id"] in await pipeline.billing("bills", "list")
    await pipeline.billing("wait")
    out = await pipeline.billing("invoices", "generate", "--period", PERIOD)
    assert out.count("finalized") >= 2, out
    await pipeline.billing("wait")


CREDIT_PERIOD = "2024-10"


async def run_demo_credit_flow(pipeline: Any) -> None:
    """The demo's customer-credit steps (Makefile ``demo``, after the September close), with
    their figures by hand (docs/money.md, "Customer credit"):

    * Northwind's September invoice is 5.33 (``expected_invoices``); it pays 105.33, so
      105.33 - 5.33 = 100.00 becomes its credit (an overpayment);
    * a one-off charge of 2 x 120.00 = 240.00 of support hours on its October draft; Northwind
      (US) is outside the scope of EU VAT, so October's total is 240.00 (its only line);
    * at October's close the invoice takes min(100.00, 240.00) = 100.00 of the credit ("Credit
      applied") and leaves 240.00 - 100.00 = 140.00 to pay;
    * the ledger reads +100.00 (overpayment), -100.00 (applied) = 0.00.
    """
    assert expected_invoices()["northwind"]["total"] == Decimal("5.33")
    [september] = json.loads(
        await pipeline.billing(
            "invoices", "list", "--period", PERIOD, "--customer", "northwind", "--json"
        )
    )
    await demo_overpayment(pipeline, september["number"])
    ledger = json.loads(await pipeline.billing("credits", "show", "northwind", "--json"))
    assert [(e["currency"], Decimal(e["amount"])) for e in ledger["entries"]] == [
        ("USD", Decimal("100.00"))
    ]
    assert Decimal(ledger["balances"]["USD"]) == Decimal("100.00")
    await demo_october_close(pipeline)

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pipeline.infra.mongodb_url)
    try:
        db = client[pipeline.namespace]
        [october] = [
            d
            async for d in db["invoicing_invoices"].find(
                {"period": CREDIT_PERIOD, "customer_id": "northwind"}
            )
        ]
        pdf = await FileCollection(db[INVOICE_PDF_FILES]).get(october["pdf_file_id"])
    finally:
        await client.close()
    assert pdf is not None
    document = october["document"]
    assert october["status"] == "finalized"
    assert Decimal(document["total"]) == Decimal("240.00")
    assert Decimal(document["credit_applied"]) == Decimal("100.00")
    assert Decimal(document["outstanding"]) == Decimal("140.00")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Credit applied" in text
    assert "140.00" in text

    ledger = json.loads(await pipeline.billing("credits", "show", "northwind", "--json"))
    amounts = [Decimal(e["amount"]) for e in ledger["entries"]]
    assert sorted(amounts) == [Decimal("-100.00"), Decimal("100.00")]
    assert sum(amounts) == Decimal(ledger["balances"].get("USD", "0")) == 0

    # the same steps again (make demo run twice): the payment and the charge are recorded once,
    # October is finalized already, the ledger is unchanged
    await demo_overpayment(pipeline, september["number"])
    out = await demo_october_close(pipeline)
    assert out.count("already finalized") == 2, out
    again = json.loads(await pipeline.billing("credits", "show", "northwind", "--json"))
    assert again["entries"] == ledger["entries"]


async def demo_overpayment(pipeline: Any, number: str) -> None:
    """The Makefile's ``billing pay``: 105.33 for Northwind's September invoice of 5.33."""
    await pipeline.billing(
        "pay",
        number,
        "--amount",
        "105.33",
        "--method",
        "Bank transfer",
        "--reference",
        "NW-SEP-2024",
        "--date",
        "2024-10-07",
    )
    await pipeline.billing("wait")


async def demo_october_close(pipeline: Any) -> str:
    """The Makefile's one-off charge on Northwind's October draft and October's close; what
    ``invoices generate`` said."""
    await pipeline.billing(
        "charges",
        "add",
        "northwind",
        "--period",
        CREDIT_PERIOD,
        "--description",
        "Support hours",
        "--quantity",
        "2",
        "--unit-price",
        "120.00",
    )
    out = await pipeline.billing("invoices", "generate", "--period", CREDIT_PERIOD)
    await pipeline.billing("wait")
    return str(out)


async def assert_focus_datasets(pipeline: Any, docs: list[dict[str, Any]], out: Path) -> None:
    """Each invoice's FOCUS 1.2 dataset, as ``billing invoices focus`` writes it: its BilledCost
    adds up to the invoice's total, it keeps FOCUS 1.2's column rules, and the subscribed
    customer's (subscription, netting and usage rows) passes focus-validator."""
    for doc in docs:
        path = out / f"{doc['number']}-focus.csv"
        said = await pipeline.billing("invoices", "focus", doc["number"], "-o", str(path))
        assert "FOCUS 1.2" in said
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal(doc["document"]["total"])
        assert {r["InvoiceId"] for r in rows} == {doc["number"]}
        assert focus_12_problems(path) == []
        if doc["customer_id"] == "contoso":
            assert [r["ChargeDescription"] for r in rows if r["ChargeCategory"] == "Purchase"] == [
                "Managed Cloud subscription, 2024-09-10 to 2024-09-30 (21/30 days)"
            ]
            assert focus_validator_failures(path, out) == []


@pytest.mark.timeout(600)  # September, then the demo's October close (run_demo_credit_flow)
async def test_a_focus_bill_becomes_emailed_pdf_invoices_once(
    pipeline: Any, tmp_path: Path
) -> None:
    await pipeline.start()
    await run_demo_flow(pipeline)
    await wait_for(lambda: _count(pipeline.smtp.directory, 2), "two emails")
    docs = await finalized_invoices(pipeline)
    assert_invoices_and_emails(docs, mails(pipeline.smtp.directory))
    await assert_focus_datasets(pipeline, docs, tmp_path)
    # every line of the bill on exactly one invoice, from what each service stored (exit 0)
    assert f"{PERIOD} reconciles" in await pipeline.billing("reconcile", "--period", PERIOD)

    # the whole flow again (same file, same close): nothing new is issued or sent
    out = await pipeline.billing("ingest", str(SAMPLE))
    assert "already loaded" in out
    out = await pipeline.billing("invoices", "generate", "--period", PERIOD)
    assert out.count("already finalized") == 2, out
    await pipeline.billing("wait")
    await asyncio.sleep(1)
    again = await finalized_invoices(pipeline)
    assert [(d["number"], d["total_units"]) for d in again] == [
        (d["number"], d["total_units"]) for d in docs
    ]
    assert len(mails(pipeline.smtp.directory)) == 2
    await validate_einvoices(pipeline, tmp_path, "pipeline_e2e_emailed_once")

    # the demo goes on: an overpayment in September, its credit applied in October
    await run_demo_credit_flow(pipeline)

    # SIGTERM: every service drains, leaves its group and exits (uvicorn re-raises the signal
    # after its graceful shutdown, so the exit status is "terminated by SIGTERM", not a crash)
    services = ("ingest", "rating", "invoicing", "notify")
    assert await pipeline.stop() == dict.fromkeys(services, -signal.SIGTERM)
    for name in services:
        log = (pipeline.logs / f"{name}.log").read_text()
        assert "FastStream app shut down gracefully" in log, name


async def _count(directory: Path, n: int) -> bool:
    return len(list(directory.glob("*.eml"))) >= n  # noqa: ASYNC240 - a tiny local listing


@pytest.mark.parametrize("victim", ["rating", "invoicing"])
async def test_a_service_killed_mid_flow_loses_nothing_and_bills_nothing_twice(
    pipeline: Any, victim: str, tmp_path: Path
) -> None:
    # small batches, so that the kill lands between commits
    for name in ("rating", "invoicing"):
        pipeline.extra_env[f"BILLING_{name.upper()}_BATCH_MAX_RECORDS"] = "25"
    await pipeline.start()
    await pipeline.billing("topics", "create")
    await pipeline.billing("catalog", "apply", str(CATALOG))
    await pipeline.billing("ingest", str(SAMPLE))

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pipeline.infra.mongodb_url)
    charges = client[pipeline.namespace]["invoicing_charges"]

    async def some_charges_stored() -> bool:
        return await charges.count_documents({}) > 0

    await wait_for(some_charges_stored, "the first charges")
    stored_before_kill = await charges.count_documents({})
    await pipeline.kill(victim)
    await client.close()
    assert stored_before_kill < 1000, "the kill came too late to be mid-flow"
    await pipeline.start(victim)

    await pipeline.billing("wait")
    await pipeline.billing("invoices", "generate", "--period", PERIOD)
    await pipeline.billing("wait")
    await wait_for(lambda: _count(pipeline.smtp.directory, 2), "two emails")
    await asyncio.sleep(1)
    docs = await finalized_invoices(pipeline)
    assert_invoices_and_emails(docs, mails(pipeline.smtp.directory))
    # every line of the bill on exactly one invoice, from what each service stored (exit 0)
    assert f"{PERIOD} reconciles" in await pipeline.billing("reconcile", "--period", PERIOD)
    await validate_einvoices(pipeline, tmp_path, f"pipeline_e2e_killed_{victim}")
