"""Customer credit and one-off charges on the running services (issue 18 points 2-3).

The operator adds a one-off charge to northwind's open September invoice through the API: the
invoicing consumer puts it on the draft before the answer. September is closed; the operator
records a payment 20.00 USD above its total: 20.00 of credit. An October one-off charge of
2 x 50.00 = 100.00 USD (northwind is in the US: no VAT, 100.00 total) is added from the
command line and October is closed: the 20.00 credit is applied, 80.00 is due, the PDF shows a
line "Credit applied" and the CSV the charge. The ledger then reads +20.00, -20.00 = 0.00.
Another customer's token never sees northwind's credit.
"""

from __future__ import annotations

import asyncio
import csv
import email
import email.policy
import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from einvoice_check import validate_issued
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "demo" / "focus_sample.csv"
CATALOG = ROOT / "demo" / "catalog.yaml"
OPERATOR = "e2e-operator-token-credit-0123456789"
CONTOSO = "e2e-contoso-token-credit-0123456789"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


async def wait_until(check: Any, what: str, seconds: float = 180) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def test_credit_is_applied_to_the_next_invoice_and_one_off_charges_reach_it(
    pipeline: Any, tmp_path: Path
) -> None:
    pipeline.extra_env["BILLING_INVOICING_API_TOKENS"] = json.dumps(
        {OPERATOR: "operator", CONTOSO: "customer:contoso"}
    )
    await pipeline.start()
    await pipeline.billing("topics", "create")
    await pipeline.billing("catalog", "apply", str(CATALOG))
    await pipeline.billing("ingest", str(SAMPLE))
    await pipeline.billing("wait")

    base = f"http://127.0.0.1:{pipeline.ports['invoicing']}"
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        workshop = {
            "period": "2024-09",
            "description": "Onboarding workshop",
            "quantity": "1",
            "unit_price": "450.00",
        }
        added = await client.post(
            "/v1/customers/northwind/charges", headers=operator, json=workshop
        )
        assert added.status_code == 201, added.text
        assert (added.json()["on_draft"], added.json()["amount"]) == (True, "450.00")
        again = await client.post(
            "/v1/customers/northwind/charges", headers=operator, json=workshop
        )
        assert (again.status_code, again.json()["charge_id"]) == (200, added.json()["charge_id"])
        draft = (await client.get("/v1/invoices/northwind:2024-09", headers=operator)).json()
        workshop_lines = [
            line for line in draft["draft_lines"] if line["service_name"] == "Onboarding workshop"
        ]
        assert [(x["provider"], x["price"]) for x in workshop_lines] == [("one-off", "450.00")]

        closing = await client.post("/v1/periods/2024-09/close", headers=operator, json={})
        assert closing.status_code == 202, closing.text

        async def september() -> dict[str, Any] | None:
            page = await client.get(
                "/v1/invoices?customer=northwind&period=2024-09", headers=operator
            )
            items: list[dict[str, Any]] = page.json()["items"]
            return items[0] if items and items[0]["number"] else None

        sept = await wait_until(september, "northwind's September invoice")
        detail = (await client.get(f"/v1/invoices/{sept['number']}", headers=operator)).json()
        [line] = [x for x in detail["document"]["lines"] if x["kind"] == "one_off"]
        assert (line["description"], line["amount"]) == ("Onboarding workshop", "450.00")

        total = Decimal(sept["total"])
        paid = await client.post(
            f"/v1/invoices/{sept['number']}/payments",
            headers=operator,
            json={"amount": f"{total + Decimal('20.00'):f}", "method": "Card", "reference": "OVER"},
        )
        assert paid.status_code == 201, paid.text
        assert Decimal(paid.json()["customer_credit_added"]) == Decimal("20.00")
        credits = (await client.get("/v1/customers/northwind/credits", headers=operator)).json()
        assert credits["balances"] == {"USD": "20.00"}
        hidden = await client.get("/v1/customers/northwind/credits", headers={
            "Authorization": f"Bearer {CONTOSO}"})  # fmt: skip
        assert hidden.status_code == 404

        out = await pipeline.billing(
            "charges", "add", "northwind", "--period", "2024-10", "--description",
            "Support hours", "--quantity", "2", "--unit-price", "50.00",
        )  # fmt: skip
        assert "= $100.00, on the draft northwind:2024-10" in " ".join(out.split())
        await pipeline.billing(
            "invoices", "generate", "--period", "2024-10", "--customer", "northwind"
        )

        async def october() -> dict[str, Any] | None:
            page = await client.get(
                "/v1/invoices?customer=northwind&period=2024-10", headers=operator
            )
            items: list[dict[str, Any]] = page.json()["items"]
            return items[0] if items and items[0]["number"] else None

        octo = await wait_until(october, "northwind's October invoice")
        number = octo["number"]
        document = (await client.get(f"/v1/invoices/{number}", headers=operator)).json()["document"]
        # 2 x 50.00 = 100.00, no VAT (US buyer); 20.00 of credit taken: 80.00 due
        assert (document["total"], document["credit_applied"], document["outstanding"]) == (
            "100.00",
            "20.00",
            "80.00",
        )
        assert octo["outstanding"] == "80.00"
        dues = (await client.get(f"/v1/invoices/{number}/dues", headers=operator)).json()
        assert (dues["credit_applied"], dues["outstanding"], dues["customer_credit"]) == (
            "20.00",
            "80.00",
            "0.00",
        )
        credits = (await client.get("/v1/customers/northwind/credits", headers=operator)).json()
        assert [(e["kind"], e["amount"]) for e in credits["entries"]] == [
            ("overpayment", "20.00"),
            ("applied", "-20.00"),
        ]
        assert credits["balances"] == {"USD": "0.00"}

        pdf = await client.get(f"/v1/invoices/{number}/pdf", headers=operator)
        target = tmp_path / f"{number}.pdf"
        target.write_bytes(pdf.content)
        text = " ".join(
            subprocess.run(  # noqa: ASYNC221 - a short local conversion
                ["pdftotext", "-layout", str(target), "-"],
                capture_output=True, text=True, check=True,
            ).stdout.split()
        )  # fmt: skip
        assert "Support hours" in text
        assert "Credit applied -$20.00" in text
        assert "Amount due $80.00" in text

        # the email says it as the PDF does: total, credit applied, amount due (issue 18)
        async def october_email() -> str | None:
            for path in pipeline.smtp.messages():
                message: Any = email.message_from_bytes(
                    path.read_bytes(), policy=email.policy.default
                )
                if number in str(message["Subject"]):
                    return str(message.get_body(preferencelist=("plain",)).get_content())
            return None

        mailed = " ".join((await wait_until(october_email, "the October email")).split())
        assert "Total: $100.00 Credit applied: -$20.00 Amount due: $80.00" in mailed
        assert "Please pay $80.00" in mailed

        listed = (await client.get(f"/v1/invoices/{number}/csv", headers=operator)).text
        rows = list(csv.DictReader(listed.splitlines()))
        [support] = [r for r in rows if r["service"] == "Support hours"]
        assert (support["quantity"], support["price"]) == ("2", "100.000000000")

    shown = await pipeline.billing("credits", "show", "northwind", "--json")
    statement = json.loads(shown[shown.index("{") :])  # after any log line
    assert statement["balances"] == {"USD": "0.00"}
    assert sum(Decimal(e["amount"]) for e in statement["entries"]) == Decimal(0)

    # September's two invoices and northwind's October one (a one-off line, credit applied), in
    # the three e-invoice formats, validated (issue 17)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pipeline.infra.mongodb_url)
    try:
        db = mongo[pipeline.namespace]
        await validate_issued(db, tmp_path, "credit_and_one_off_charges_e2e", expect=3)
    finally:
        await mongo.close()
