"""``GET /v1/invoices/{number}/focus`` on FerretDB, with the invoices of the HTTP API tests
(test_invoicing_http_api.py): alpha's September, EC2 price 100.00 and S3 price 10.00, VAT 19 %
-> total 130.90 EUR; its October is still a draft. Who may read it: as the CSV route (the
404 for another customer's invoice is checked with every customer route there)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from focus_checks import focus_12_problems
from test_invoicing_http_api import ALPHA, ALPHA_NO, BETA, Api, api

pytestmark = pytest.mark.integration
__all__ = ["api"]  # the fixture, shared


async def test_a_customer_downloads_its_invoice_as_focus(api: Api, tmp_path: Path) -> None:
    answer = await api.get(f"/v1/invoices/{ALPHA_NO}/focus", ALPHA)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == (f'attachment; filename="{ALPHA_NO}-focus.csv"')
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    # two charges, then the VAT: 19 % of 110.00 = 20.90 (no rounding row: whole cents)
    assert [(r["ChargeCategory"], r["ServiceName"], r["BilledCost"]) for r in rows] == [
        ("Usage", "Amazon EC2", "100.000000000"),
        ("Usage", "Amazon S3", "10.000000000"),
        ("Tax", "VAT 19% (DE)", "20.90"),
    ]
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal("130.90")
    assert {(r["InvoiceId"], r["BillingAccountId"]) for r in rows} == {(ALPHA_NO, "alpha")}
    assert {r["InvoiceIssuerName"] for r in rows} == {"Cumulus Cloud Resellers GmbH"}
    # the provider's cost (80.00, 7.50) is nowhere; no list price was given: ListCost = price
    assert "80.0" not in answer.text
    assert "7.5" not in answer.text
    assert [r["ListCost"] for r in rows] == [r["BilledCost"] for r in rows]
    path = tmp_path / "alpha.csv"
    path.write_text(answer.text, encoding="utf-8")
    # these charges were rated without a quantity: the dataset says so (null) rather than make
    # one up, the one FOCUS 1.2 rule such rows break
    assert focus_12_problems(path) == [
        "row 2: PricingQuantity must not be null on Usage",
        "row 3: PricingQuantity must not be null on Usage",
    ]
    # the operator gets the same dataset
    assert (await api.get(f"/v1/invoices/{ALPHA_NO}/focus")).text == answer.text


async def test_another_customer_and_a_draft_get_no_dataset(api: Api) -> None:
    other = await api.get(f"/v1/invoices/{ALPHA_NO}/focus", BETA)
    assert (other.status_code, other.json()["detail"]) == (404, f"no invoice {ALPHA_NO!r}")
    draft = await api.get("/v1/invoices/alpha:2024-10/focus", ALPHA)
    assert draft.status_code == 409, draft.text
    assert "once it is finalized" in draft.json()["detail"]
