"""The invoicing HTTP API on the running services: a customer moves its Billing role to a new
address through the API, the operator closes the period through the API, and the invoice email
(then the payment receipt) goes to the new address only; the PDF the API serves is the one
emailed; paying it in full publishes InvoicePaid on the real broker. A credit note issued with
the CLI is emailed with its PDF; every document issued passes the e-invoice validator."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from einvoice_check import validate_issued
from facturx import get_xml_from_pdf  # type: ignore[import-untyped]
from pymongo import AsyncMongoClient

from billing_devtools.testing import TopicReader
from billing_schemas.events import InvoicePaid
from billing_schemas.topics import Topic, topic_name

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "demo" / "focus_sample.csv"
CATALOG = ROOT / "demo" / "catalog.yaml"
OPERATOR = "e2e-operator-token-0123456789"
NORTHWIND = "e2e-northwind-token-0123456789"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def mails(directory: Path) -> list[EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(directory.glob("*.eml"))
    ]


async def wait_until(check: Any, what: str, seconds: float = 120) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.3)


async def test_contacts_changed_through_the_api_receive_the_next_emails(
    pipeline: Any, tmp_path: Path
) -> None:
    pipeline.extra_env["BILLING_INVOICING_API_TOKENS"] = json.dumps(
        {OPERATOR: "operator", NORTHWIND: "customer:northwind"}
    )
    await pipeline.start()
    await pipeline.billing("topics", "create")
    await pipeline.billing("catalog", "apply", str(CATALOG))
    await pipeline.billing("ingest", str(SAMPLE))
    await pipeline.billing("wait")

    base = f"http://127.0.0.1:{pipeline.ports['invoicing']}"
    panel = {"Authorization": f"Bearer {NORTHWIND}"}
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    contacts = "/v1/customers/northwind/contacts"
    servers, ns = pipeline.infra.kafka_bootstrap_servers, f"{pipeline.namespace}."
    async with (
        httpx.AsyncClient(base_url=base, timeout=30) as client,
        TopicReader(servers, topic_name(Topic.INVOICE_PAID, ns)) as paid_events,
    ):
        # the demo catalog gives northwind two Billing contacts (ap@, cfo@): the panel adds a
        # new address with the role, then takes it from both old ones
        added = await client.post(
            contacts,
            headers=panel,
            json={"email": "invoices@northwind.example", "roles": ["Billing"]},
        )
        assert added.status_code == 201, added.text
        for old, roles in (("ap@northwind.example", []), ("cfo@northwind.example", ["DPO"])):
            changed = await client.patch(f"{contacts}/{old}", headers=panel, json={"roles": roles})
            assert changed.status_code == 200, changed.text
        other = await client.get("/v1/customers/contoso/contacts", headers=panel)
        assert other.status_code == 404  # another customer: as if it did not exist

        closing = await client.post("/v1/periods/2024-09/close", headers=operator, json={})
        assert closing.status_code == 202, closing.text
        assert sorted(closing.json()["closing"]) == ["contoso:2024-09", "northwind:2024-09"]

        async def numbered() -> list[dict[str, Any]] | None:
            page = await client.get("/v1/invoices?period=2024-09", headers=operator)
            items: list[dict[str, Any]] = page.json()["items"]
            return items if len(items) == 2 and all(i["number"] for i in items) else None

        await wait_until(numbered, "two numbered invoices")
        [mine] = (await client.get("/v1/invoices", headers=panel)).json()["items"]
        assert mine["customer_id"] == "northwind"
        await wait_until(lambda: _at_least(pipeline.smtp.directory, 2), "two invoice emails")
        inbox = mails(pipeline.smtp.directory)
        [invoice_mail] = [m for m in inbox if mine["number"] in str(m["Subject"])]
        assert [a.addr_spec for a in invoice_mail["To"].addresses] == ["invoices@northwind.example"]
        [attachment] = list(invoice_mail.iter_attachments())
        pdf = await client.get(f"/v1/invoices/{mine['number']}/pdf", headers=panel)
        assert pdf.content == attachment.get_content()

        dues = (await client.get(f"/v1/invoices/{mine['number']}/dues", headers=panel)).json()
        assert dues["outstanding"] == mine["total"]
        payment = {"amount": mine["total"], "method": "Card", "reference": "CH-e2e-1"}
        paid = await client.post(
            f"/v1/invoices/{mine['number']}/payments", headers=operator, json=payment
        )
        assert (paid.status_code, paid.json()["status"]) == (201, "paid")
        [event] = await paid_events.wait_for(1)
        announced = InvoicePaid.model_validate_json(event.value)
        assert (announced.data.invoice_number, announced.data.paid) == (
            mine["number"],
            Decimal(mine["total"]),
        )

        async def receipt() -> list[EmailMessage]:
            return [
                m
                for m in mails(pipeline.smtp.directory)
                if "CH-e2e-1" in m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            ]

        [receipt_mail] = await wait_until(receipt, "the payment receipt")
        assert [a.addr_spec for a in receipt_mail["To"].addresses] == ["invoices@northwind.example"]

        # issue 17: a credit note gets its PDF at issue (Factur-X, type 381: contoso receives
        # Factur-X), emailed with it to contoso's Billing contact
        page = await client.get("/v1/invoices?period=2024-09", headers=operator)
        [theirs] = [i for i in page.json()["items"] if i["customer_id"] == "contoso"]
        reason = ("--reason", "SLA credit for September")
        await pipeline.billing("invoices", "credit", theirs["number"], "--amount", "10.00", *reason)

        async def credit_note_mail() -> list[EmailMessage]:
            inbox = mails(pipeline.smtp.directory)
            return [m for m in inbox if str(m["Subject"]).startswith("Credit note")]

        [note_mail] = await wait_until(credit_note_mail, "the credit-note email")
        assert [a.addr_spec for a in note_mail["To"].addresses] == ["invoices@contoso.example"]
        [note_pdf] = list(note_mail.iter_attachments())
        assert str(note_pdf.get_filename()).startswith("CCR-CN-2")
        name, xml = get_xml_from_pdf(note_pdf.get_content(), check_xsd=False)
        assert name == "factur-x.xml"
        assert b"<ram:TypeCode>381</ram:TypeCode>" in xml
        assert theirs["number"].encode() in xml  # BT-25, the invoice it corrects

    # every invoice and credit note this test issued, in the three formats, validated
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pipeline.infra.mongodb_url)
    try:
        db = mongo[pipeline.namespace]
        checked = await validate_issued(db, tmp_path, "invoicing_api_e2e", expect=3)
    finally:
        await mongo.close()
    assert f"{theirs['number']}-stored.pdf" in checked


async def _at_least(directory: Path, n: int) -> bool:
    return len(list(directory.glob("*.eml"))) >= n  # noqa: ASYNC240 - a tiny local listing
