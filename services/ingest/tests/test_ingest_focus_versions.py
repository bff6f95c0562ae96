"""Which FOCUS version a file is: its own marker first, else what each version requires.

``microsoft_focus_1_0.csv`` has the 96 columns of Microsoft Cost Management's FOCUS 1.0
export, in its order (dataset schema "FOCUS cost and usage details", version 1.0): the FOCUS
1.0 columns plus ``BillingAccountType`` and ``SubAccountType`` (which FOCUS 1.2 added) and
``x_`` columns, but not ``ServiceSubcategory``, which FOCUS 1.1 made mandatory. Two lines, by
hand: 2.304 of D2s v3 usage and a 73.00 reservation purchase = 75.304 EUR.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from billing_ingest.adapters.memory import InMemoryBillRegistry, InMemoryUsagePublisher
from billing_ingest.adapters.readers import open_bill
from billing_ingest.domain import focus
from billing_ingest.domain.formats import detect
from billing_ingest.service.load_bill import load_bill

FIXTURES = Path(__file__).parent / "fixtures"


def _with_marker(source: Path, target: Path, source_type: str, version: str) -> Path:
    """The file with the two columns FinOps hubs adds to every row it ingests."""
    with source.open(newline="") as src, target.open("w", newline="") as out:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(
            out, [*(reader.fieldnames or []), "x_SourceType", "x_SourceVersion"]
        )
        writer.writeheader()
        for row in reader:
            writer.writerow({**row, "x_SourceType": source_type, "x_SourceVersion": version})
    return target


def _detected(header: list[str]) -> str | None:
    found = detect(header)
    return None if found is None else found.name


async def test_microsofts_focus_1_0_export_is_focus_1_0() -> None:
    path = FIXTURES / "microsoft_focus_1_0.csv"
    header = open_bill(path).header
    assert {"BillingAccountType", "SubAccountType"} <= set(header)
    assert not set(focus.MANDATORY_FROM_1_1) & set(header)
    result = await load_bill(
        path, publisher=InMemoryUsagePublisher(), registry=InMemoryBillRegistry()
    )
    assert result.summary.format == "focus-1.0"
    assert (result.summary.rows_accepted, result.summary.rows_rejected) == (2, 0)
    assert result.summary.billed_cost_totals == {"EUR": Decimal("75.304")}


def test_a_file_is_the_newest_version_whose_requirements_it_meets() -> None:
    base = list(focus.REQUIRED_COLUMNS)
    assert _detected(base) == "focus-1.0"
    assert _detected([*base, "ServiceSubcategory"]) == "focus-1.1"
    with_1_2 = [*base, "ServiceSubcategory", "InvoiceId"]
    assert _detected(with_1_2) == "focus-1.2"
    # columns 1.2 added, without what 1.1 requires: still 1.0
    assert _detected([*base, "InvoiceId", "SubAccountType"]) == "focus-1.0"


@pytest.mark.parametrize(
    ("fixture", "version", "expected"),
    [
        ("focus_1_2.csv", "1.0r2", "focus-1.0"),  # the marker wins over the columns
        ("focus_1_2.csv", "1.0", "focus-1.0"),
        ("microsoft_focus_1_0.csv", "1.2-preview", "focus-1.2"),
        ("focus_1_2.csv", "1.2", "focus-1.2"),
        ("focus_1_2.csv", "0.5", "focus-1.2"),  # a version we do not know: the columns decide
    ],
)
async def test_the_files_own_version_marker_is_preferred(
    tmp_path: Path, fixture: str, version: str, expected: str
) -> None:
    path = _with_marker(FIXTURES / fixture, tmp_path / "marked.csv", "FocusCost", version)
    result = await load_bill(
        path, publisher=InMemoryUsagePublisher(), registry=InMemoryBillRegistry()
    )
    assert result.summary.format == expected


async def test_a_marker_of_another_dataset_is_not_a_focus_version(tmp_path: Path) -> None:
    path = _with_marker(FIXTURES / "focus_1_2.csv", tmp_path / "m.csv", "ActualCost", "2021-10-01")
    result = await load_bill(
        path, publisher=InMemoryUsagePublisher(), registry=InMemoryBillRegistry()
    )
    assert result.summary.format == "focus-1.2"
