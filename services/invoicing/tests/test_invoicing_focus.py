"""The FOCUS 1.2 dataset of an invoice (service/focus_export.py), from stored charges and the
stored invoice, without a database: every figure below is computed by hand.

Customer "acme" (DE, EUR, VAT 19 %), September 2024, invoice CCR-2024-000007 issued by
Cumulus; a Business subscription (fee 300.00, 15.00 included) from 2024-09-10: 21 of 30 days
-> fee 210.00, included 10.50. Charges (their provider cost is 9.87654321 EUR each, a figure
that must appear nowhere):

* EC2 usage, 24 hours: price 11.25, public on-demand price 14.00;
* S3 usage, 100 GB-Mo: price 3.333 (no list price from the provider: ListCost = BilledCost);
* a provider credit of -1.00 and a provider tax of 0.50 (which came with a quantity);
* EC2 usage of August, received after August's invoice: 2.00 (a dated correction).

Lines: 210.00 + 11.25 + 3.333 - 1.00 + 0.50 (September's cloud: 14.083) - 10.50 (covered) +
2.00 = 215.583; subtotal 215.58 (rounding -0.003); VAT 19 % of 215.583 = 40.96077 -> 40.96;
total 256.54.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from focus_checks import focus_12_problems, focus_validator_failures

from billing_catalog.models import Customer, InvoicingEntity, Plan, TaxRate
from billing_invoicing.adapters.invoice_repo import charge_document
from billing_invoicing.adapters.stored_rows import charge_line_of, invoice_row_of
from billing_invoicing.domain.invoice import ChargeGroup, InvoiceStatus, assemble_invoice
from billing_invoicing.domain.stored import ChargeLine, InvoiceRow
from billing_invoicing.service.focus_export import (
    COLUMNS,
    FocusUnavailableError,
    write_focus_csv,
)
from billing_schemas.events import ChargeCategory, LineType, RatedCharge

D = Decimal
COST = "9.87654321"
NUMBER = "CCR-2024-000007"

ENTITY = InvoicingEntity.model_validate(
    {
        "id": "cumulus",
        "name": "Cumulus Cloud Resellers GmbH",
        "address": {"lines": ["Wolkenstrasse 7"], "country": "DE"},
        "number_prefix": "CCR-",
        "email": "billing@cumulus.example",
    }
)
CUSTOMER = Customer.model_validate(
    {
        "id": "acme",
        "name": "Acme Analytik GmbH",
        "address": {"lines": ["Weg 2"], "country": "DE"},
        "currency": "EUR",
        "invoicing_entity": "cumulus",
        "price_list": "p",
        "subscriptions": [{"plan": "managed", "start": "2024-09-10"}],
    }
)
PLAN = Plan(
    id="managed", name="Managed Cloud", currency="EUR", fee=D("300.00"),
    included_infrastructure=D("15.00"),
)  # fmt: skip


def rated(
    cid: str,
    service: str,
    price: str,
    *,
    period: str = "2024-09",
    category: ChargeCategory = ChargeCategory.USAGE,
    quantity: str | None = None,
    unit: str | None = None,
    list_cost: str | None = None,
) -> RatedCharge:
    month = int(period[5:])
    return RatedCharge(
        charge_id=cid,
        record_id=cid,
        customer_id="acme",
        provider="AWS",
        sub_account_id="123456789012",
        sub_account_name="Pioneer Apollo",
        billing_period=period,
        charge_period_start=datetime(2024, month, 3, 10, tzinfo=UTC),
        charge_period_end=datetime(2024, month, 3, 11, tzinfo=UTC),
        charge_category=category,
        line_type=LineType.ON_DEMAND,
        service_name=service,
        service_category="Compute" if service == "Amazon EC2" else "Cloud storage",
        sku_id="SKU-1",
        description=f"{service} line",
        region="eu-central-1",
        quantity=D(quantity) if quantity else None,
        unit=unit,
        cost=D(COST),
        cost_currency="EUR",
        price=D(price),
        currency="EUR",
        margin=D(price) - D(COST),
        rule="markup 12.5% on billed cost (global)",
        price_list_id="p",
        price_list_version=1,
        list_cost=D(list_cost) if list_cost else None,
    )


CHARGES = [
    rated("c-ec2", "Amazon EC2", "11.25", quantity="24", unit="Hours", list_cost="14.00"),
    rated("c-s3", "Amazon S3", "3.333", quantity="100", unit="GB-Mo"),
    rated("c-credit", "Amazon EC2", "-1.00", category=ChargeCategory.CREDIT),
    rated("c-tax", "Tax", "0.50", category=ChargeCategory.TAX, quantity="1", unit="Tax"),
    rated("c-late", "Amazon EC2", "2.00", period="2024-08", quantity="4", unit="Hours"),
]


def stored_invoice() -> InvoiceRow:
    groups: dict[tuple[str, str], Decimal] = {}
    for c in CHARGES:
        key = (c.billing_period, c.service_name)
        groups[key] = groups.get(key, D(0)) + c.price
    invoice = assemble_invoice(
        customer=CUSTOMER,
        entity=ENTITY,
        period="2024-09",
        groups=[
            ChargeGroup(
                provider="AWS",
                service_name=service,
                charge_count=1,
                cost=D(COST),
                price=price,
                period=period,
            )
            for (period, service), price in groups.items()
        ],
        plans={"managed": PLAN},
        tax_rates=[TaxRate(country="DE", percent=D("19"))],
    ).model_copy(update={"number": NUMBER, "status": InvoiceStatus.FINALIZED})
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D("215.58"), D("40.96"), D("256.54"))
    return invoice_row_of(
        {
            "_id": "acme:2024-09",
            "number": NUMBER,
            "status": "finalized",
            "document": invoice.model_dump(mode="json"),
        }
    )


async def stored_charges() -> AsyncIterator[ChargeLine]:
    for c in CHARGES:
        doc = charge_document(c, "acme:2024-09") | {"_id": c.charge_id}
        if c.billing_period != "2024-09":
            doc["late"] = True
        # as MongoDB returns them: naive UTC datetimes
        doc["charge_period_start"] = c.charge_period_start.replace(tzinfo=None)
        assert c.charge_period_end is not None
        doc["charge_period_end"] = c.charge_period_end.replace(tzinfo=None)
        yield charge_line_of(doc)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = io.StringIO()
    rows = asyncio.run(write_focus_csv(stored_invoice(), stored_charges(), out))
    assert rows == 5 + 4  # charges; subscription, netting, VAT, rounding
    path = tmp_path_factory.mktemp("focus") / f"{NUMBER}-focus.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def rows_of(dataset: Path) -> list[dict[str, str]]:
    with dataset.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_billed_cost_adds_up_to_the_invoice_total(dataset: Path) -> None:
    rows = rows_of(dataset)
    assert sum(D(r["BilledCost"]) for r in rows) == D("256.54")
    assert {r["InvoiceId"] for r in rows} == {NUMBER}
    assert {r["InvoiceIssuerName"] for r in rows} == {"Cumulus Cloud Resellers GmbH"}
    assert {(r["BillingAccountId"], r["BillingAccountName"]) for r in rows} == {
        ("acme", "Acme Analytik GmbH")
    }
    assert {(r["BillingPeriodStart"], r["BillingPeriodEnd"]) for r in rows} == {
        ("2024-09-01T00:00:00Z", "2024-10-01T00:00:00Z")
    }


def test_charges_are_priced_at_our_price_and_listed_at_the_public_price(dataset: Path) -> None:
    by_id = {r["x_ChargeId"]: r for r in rows_of(dataset) if r["x_ChargeId"]}
    ec2 = by_id["c-ec2"]
    assert (ec2["BilledCost"], ec2["EffectiveCost"], ec2["ContractedCost"], ec2["ListCost"]) == (
        "11.250000000",
        "11.250000000",
        "11.250000000",
        "14.000000000",
    )
    assert (ec2["ChargeCategory"], ec2["ChargeFrequency"], ec2["ChargeClass"]) == (
        "Usage",
        "Usage-Based",
        "",
    )
    assert (ec2["ChargePeriodStart"], ec2["ChargePeriodEnd"]) == (
        "2024-09-03T10:00:00Z",
        "2024-09-03T11:00:00Z",
    )
    assert (ec2["PricingQuantity"], ec2["PricingUnit"], ec2["ServiceCategory"]) == (
        "24",
        "Hours",
        "Compute",
    )
    assert (ec2["ProviderName"], ec2["PublisherName"], ec2["SubAccountName"]) == (
        "AWS",
        "AWS",
        "Pioneer Apollo",
    )
    # no list price from the provider: FOCUS asks ListCost = BilledCost
    assert by_id["c-s3"]["ListCost"] == by_id["c-s3"]["BilledCost"] == "3.333000000"
    assert by_id["c-s3"]["ServiceCategory"] == "Other"  # "Cloud storage" is not FOCUS's
    assert (by_id["c-tax"]["ChargeCategory"], by_id["c-tax"]["PricingQuantity"]) == ("Tax", "")
    assert by_id["c-credit"]["ChargeCategory"] == "Credit"
    late = by_id["c-late"]
    assert (late["ChargeClass"], late["ChargePeriodStart"]) == (
        "Correction",
        "2024-08-03T10:00:00Z",
    )


def test_invoice_lines_no_charge_carries_taxes_and_rounding_are_rows(dataset: Path) -> None:
    rest = [
        (r["ChargeCategory"], r["ChargeDescription"], r["BilledCost"], r["PricingQuantity"])
        for r in rows_of(dataset)
        if not r["x_ChargeId"]
    ]
    assert rest == [
        (
            "Purchase",
            "Managed Cloud subscription, 2024-09-10 to 2024-09-30 (21/30 days)",
            "210.00",
            "1",
        ),
        ("Credit", "Included cloud infrastructure (plans)", "-10.50", ""),
        ("Tax", "VAT 19% (DE)", "40.96", ""),
        ("Adjustment", "Rounding of the invoice to the currency's minor units", "-0.003", ""),
    ]


def test_provider_cost_never_appears(dataset: Path) -> None:
    text = dataset.read_text(encoding="utf-8")
    assert "9.876" not in text
    assert "markup" not in text
    assert not {"cost", "margin", "rule", "fx_rate"} & {c.lower() for c in COLUMNS}


def test_the_focus_validator_passes_it(dataset: Path, tmp_path: Path) -> None:
    assert focus_validator_failures(dataset, tmp_path) == []


def test_it_keeps_focus_12_column_rules(dataset: Path) -> None:
    assert focus_12_problems(dataset) == []


def test_the_checks_catch_a_broken_dataset(dataset: Path, tmp_path: Path) -> None:
    # the checks can fail: a null BilledCost, a local time and a Usage row without quantity
    rows = rows_of(dataset)
    rows[0] |= {"BilledCost": "", "ChargePeriodStart": "2024-09-03 10:00:00"}
    rows[1] |= {"PricingQuantity": "", "PricingUnit": ""}
    broken = tmp_path / "broken.csv"
    with broken.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    failures = focus_validator_failures(broken, tmp_path)
    assert any(f.startswith("BilledCost_NotNull") for f in failures), failures
    assert any(f.startswith("ChargePeriodStart_IsDateTime") for f in failures), failures
    assert focus_12_problems(broken) == [
        "row 2: BilledCost is null",
        "row 2: ChargePeriodStart '2024-09-03 10:00:00' is not YYYY-MM-DDTHH:mm:ssZ",
        "row 3: PricingQuantity must not be null on Usage",
    ]


def test_a_draft_has_no_dataset() -> None:
    draft = invoice_row_of({"_id": "acme:2024-10", "status": "draft", "document": None})
    with pytest.raises(FocusUnavailableError, match="once it is finalized"):
        asyncio.run(write_focus_csv(draft, stored_charges(), io.StringIO()))
