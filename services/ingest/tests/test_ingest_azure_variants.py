"""Microsoft's cost details exports in the column namings its field reference documents.

Microsoft's "Understand cost details fields" gives the amount as ``CostInBillingCurrency`` (EA,
MCA) or ``Cost`` (EA, pay-as-you-go), the currency as ``BillingCurrency``,
``BillingCurrencyCode`` or ``Currency``, and older terms (``ConsumedQuantity`` for ``Quantity``,
``UsageDate`` for ``Date``, ``InstanceId`` for ``ResourceId``); EA and pay-as-you-go exports
write PascalCase, MCA camelCase, and "some fields might differ in casing". Each export below is
written the way Excel-friendly exports are: UTF-8 with a byte-order mark, CRLF line ends.

Every file holds the same three lines, by hand: 24 h of a D2s v3 at 0.096 = 2.304, 10 GB of
storage = 0.50, a reservation purchase of 73.00 -> 75.804 EUR; the subscription of the storage
line is the second one.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from billing_ingest.adapters.memory import InMemoryBillRegistry, InMemoryUsagePublisher
from billing_ingest.adapters.readers import open_bill
from billing_ingest.domain.formats import detect
from billing_ingest.service.load_bill import load_bill
from billing_schemas.events import ChargeCategory, LineType

SUB_1, SUB_2 = "a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4-0000-4000-8000-000000000002"


@dataclass(frozen=True)
class Export:
    name: str
    fmt: str
    columns: dict[str, str]  # field -> the export's column name
    extra: tuple[str, ...]  # other columns of the export (left empty or constant)
    dates: tuple[str, str]  # billing period start, charge date


EA_ACTUAL = Export(
    "ea-actual-cost",
    "azure-ea",
    {
        "account": "BillingAccountId",
        "period": "BillingPeriodStartDate",
        "subscription": "SubscriptionId",
        "date": "Date",
        "charge_type": "ChargeType",
        "cost": "Cost",
        "currency": "BillingCurrency",
        "quantity": "Quantity",
        "unit": "UnitOfMeasure",
        "meter": "MeterCategory",
        "model": "PricingModel",
        "resource": "ResourceId",
    },
    ("AccountName", "AccountOwnerId", "BillingAccountName", "BillingPeriodEndDate", "PartNumber"),
    ("09/01/2024", "09/03/2024"),
)
EA_CAMEL = Export(
    "ea-camel-case",
    "azure-ea",
    {
        "account": "billingAccountId",
        "period": "billingPeriodStartDate",
        "subscription": "subscriptionId",
        "date": "date",
        "charge_type": "chargeType",
        "cost": "costInBillingCurrency",
        "currency": "billingCurrencyCode",
        "quantity": "quantity",
        "unit": "unitOfMeasure",
        "meter": "meterCategory",
        "model": "pricingModel",
        "resource": "resourceId",
    },
    ("accountName", "accountOwnerId", "billingProfileId", "partNumber"),
    ("2024-09-01", "2024-09-03"),
)
PAYG_OLD_TERMS = Export(
    "pay-as-you-go",
    "azure-ea",
    {
        "account": "BillingAccountId",
        "period": "BillingPeriodStartDate",
        "subscription": "SubscriptionId",
        "date": "UsageDate",
        "charge_type": "ChargeType",
        "cost": "Cost",
        "currency": "Currency",
        "quantity": "ConsumedQuantity",
        "unit": "Unit",
        "meter": "MeterCategory",
        "model": "PricingModel",
        "resource": "InstanceId",
    },
    ("AccountName", "AccountOwnerId", "BillingProfileId", "OfferId"),
    ("09/01/2024", "09/03/2024"),
)
MCA_PASCAL = Export(
    "mca-pascal-case",
    "azure-mca",
    {
        "account": "BillingAccountId",
        "period": "BillingPeriodStartDate",
        "subscription": "SubscriptionId",
        "date": "Date",
        "charge_type": "ChargeType",
        "cost": "CostInBillingCurrency",
        "currency": "BillingCurrency",
        "quantity": "Quantity",
        "unit": "UnitOfMeasure",
        "meter": "MeterCategory",
        "model": "PricingModel",
        "resource": "ResourceId",
    },
    (
        "BillingProfileId",
        "CostInPricingCurrency",
        "PricingCurrency",
        "ExchangeRatePricingToBilling",
    ),
    ("2024-09-01", "2024-09-03"),
)
EXPORTS = [EA_ACTUAL, EA_CAMEL, PAYG_OLD_TERMS, MCA_PASCAL]

LINES = [
    # subscription, charge type, pricing model, quantity, unit, meter category, cost
    (SUB_1, "Usage", "OnDemand", "24", "1 Hour", "Virtual Machines", "2.304"),
    (SUB_2, "Usage", "OnDemand", "10", "1 GB/Month", "Storage", "0.50"),
    (SUB_1, "Purchase", "Reservation", "1", "1 Hour", "", "73.00"),
]


def write_export(export: Export, path: Path) -> Path:
    header = [*export.columns.values(), *export.extra]
    with path.open("w", encoding="utf-8-sig", newline="") as out:  # BOM; csv writes CRLF
        writer = csv.writer(out)
        writer.writerow(header)
        for subscription, kind, model, quantity, unit, meter, cost in LINES:
            cells = {
                "account": "8611537",
                "period": export.dates[0],
                "subscription": subscription,
                "date": export.dates[1],
                "charge_type": kind,
                "cost": cost,
                "currency": "EUR",
                "quantity": quantity,
                "unit": unit,
                "meter": meter,
                "model": model,
                "resource": f"/subscriptions/{subscription}/resourceGroups/rg",
            }
            row = [cells[field] for field in export.columns]
            writer.writerow(row + [""] * len(export.extra))
    return path


@pytest.mark.parametrize("export", EXPORTS, ids=[e.name for e in EXPORTS])
async def test_each_documented_naming_is_detected_and_read(export: Export, tmp_path: Path) -> None:
    path = write_export(export, tmp_path / f"{export.name}.csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    fmt = detect(open_bill(path).header)
    assert fmt is not None
    assert fmt.name == export.fmt
    publisher = InMemoryUsagePublisher()
    result = await load_bill(path, publisher=publisher, registry=InMemoryBillRegistry())
    summary = result.summary
    assert (summary.rows_read, summary.rows_accepted, summary.rows_rejected) == (3, 3, 0)
    assert summary.billed_cost_totals == {"EUR": Decimal("75.804")}
    vm, storage, purchase = (e.data for _, e in publisher.usage_events)
    assert (vm.sub_account_id, vm.pricing_quantity, vm.pricing_unit) == (
        SUB_1,
        Decimal(24),
        "1 Hour",
    )
    assert vm.resource_id == f"/subscriptions/{SUB_1}/resourceGroups/rg"
    assert vm.charge_period_start.isoformat() == "2024-09-03T00:00:00+00:00"
    assert (storage.sub_account_id, storage.billed_cost) == (SUB_2, Decimal("0.50"))
    assert (purchase.charge_category, purchase.line_type) == (
        ChargeCategory.PURCHASE,
        LineType.COMMITMENT_FEE,
    )
    assert {r.billing_period for r in (vm, storage, purchase)} == {"2024-09"}


async def test_a_bad_amount_is_rejected_under_the_exports_own_column_name(tmp_path: Path) -> None:
    path = write_export(PAYG_OLD_TERMS, tmp_path / "payg.csv")
    path.write_text(path.read_text(encoding="utf-8-sig").replace(",0.50,", ",0,50,", 1))
    publisher = InMemoryUsagePublisher()
    await load_bill(path, publisher=publisher, registry=InMemoryBillRegistry())
    [(_, rejected)] = publisher.rejected_events
    assert rejected.data.row == 3
    assert rejected.data.reason == "row has 17 fields, the header has 16"
    path.write_text(path.read_text().replace(",0,50,", ",0.5O,", 1))
    publisher = InMemoryUsagePublisher()
    await load_bill(path, publisher=publisher, registry=InMemoryBillRegistry())
    [(_, rejected)] = publisher.rejected_events
    assert (rejected.data.row, rejected.data.column) == (3, "Cost")
