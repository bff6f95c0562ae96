"""Regression tests for the review's invoicing defects (issue 13): each failed before its fix.

Figures are computed by hand in the comment above their assertion.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

from billing_invoicing.domain.invoice import ChargeGroup, LineKind, assemble_invoice
from billing_invoicing.service.usage_csv import write_usage_csv
from billing_schemas.catalog import Customer, InvoicingEntity, TaxRate

D = Decimal
DE_RATES = [
    TaxRate(country="DE", percent=D("19")),
    TaxRate(country="DE", percent=D("16"), effective_from=date(2020, 7, 1)),
    TaxRate(country="DE", percent=D("19"), effective_from=date(2021, 1, 1)),
]


def entity() -> InvoicingEntity:
    return InvoicingEntity.model_validate(
        {
            "id": "seller",
            "name": "Seller GmbH",
            "address": {"lines": ["Strasse 1"], "country": "DE"},
            "vat_id": "DE123456789",
            "number_prefix": "S-",
            "email": "billing@seller.example",
        }
    )


def customer(currency: str = "EUR") -> Customer:
    return Customer.model_validate(
        {
            "id": "buyer",
            "name": "Buyer",
            "address": {"lines": ["Street 1"], "country": "DE"},
            "currency": currency,
            "invoicing_entity": "seller",
            "price_list": "p",
        }
    )


# --- item 6: late lines are taxed by the regime of their own period ------------------------


def test_late_usage_is_taxed_at_the_rate_of_the_period_it_belongs_to() -> None:
    # January 2021 (19 %) with usage of December 2020 (16 %) received late:
    # 100.00 x 19 % = 19.00 and 50.00 x 16 % = 8.00; tax 27.00 (not 28.50 = 150 x 19 %)
    groups = [
        ChargeGroup(provider="AWS", service_name="EC2", charge_count=1, cost=D(0),
                    price=D("100.00"), period="2021-01"),
        ChargeGroup(provider="AWS", service_name="EC2", charge_count=1, cost=D(0),
                    price=D("50.00"), period="2020-12"),
    ]  # fmt: skip
    inv = assemble_invoice(
        customer=customer(), entity=entity(), period="2021-01", groups=groups, tax_rates=DE_RATES
    )

    assert [line.kind for line in inv.lines] == [LineKind.USAGE, LineKind.CORRECTION]
    assert [(t.label, t.base, t.tax) for t in inv.taxes] == [
        ("VAT 19% (DE)", D("100.00"), D("19.00")),
        ("VAT 16% (DE)", D("50.00"), D("8.00")),
    ]
    assert (inv.subtotal, inv.tax, inv.total) == (D("150.00"), D("27.00"), D("177.00"))


# --- item 12: the usage CSV never hands a spreadsheet a formula -----------------------------


async def _docs(*docs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    for doc in docs:
        yield doc


def _charge_doc(**text: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": "c1", "period": "2024-09", "provider": "AWS", "sub_account_id": "111",
        "service_name": "EC2", "sku_id": "SKU", "description": "d", "region": "eu",
        "charge_category": "usage", "line_type": "on_demand", "charge_period_start": None,
        "quantity": "-2", "unit": "h", "cost_units": -1_500_000_000, "cost_currency": "EUR",
        "fx_rate": None, "basis": "cost", "price_units": -2_000_000_000, "currency": "EUR",
        "margin_units": -500_000_000, "savings_removed_units": 0, "rule": "markup (global)",
        "price_list_id": "p", "price_list_version": 1,
    }  # fmt: skip
    return doc | text


async def test_the_usage_csv_neutralizes_cells_a_spreadsheet_would_run() -> None:
    out = io.StringIO()
    hostile = {
        "description": '=HYPERLINK("http://evil.example","click")',
        "sku_id": "@SUM(A1:A9)",
        "region": "+1+cmd|' /C calc'!A0",
        "service_name": "-2+3",
        "sub_account_id": "\t=1",
    }
    await write_usage_csv(_docs(_charge_doc(**hostile)), out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))

    assert row["description"] == "'" + hostile["description"]
    assert row["sku"] == "'@SUM(A1:A9)"
    assert row["region"] == "'" + hostile["region"]
    assert row["service"] == "'-2+3"
    assert row["account"] == "'\t=1"
    # our own numbers stay numbers, negative ones included
    assert (row["quantity"], row["price"], row["cost"]) == ("-2", "-2.000000000", "-1.500000000")
    assert row["provider"] == "AWS"
