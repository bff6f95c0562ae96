"""Files with nothing to bill: empty, header only, every row malformed.

The Azure EA header below is the column list of Microsoft's EA cost details export
(dataset schema 2024-08-01, field reference "Understand cost details fields").
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from pydantic import ValidationError

from billing_ingest.adapters.memory import InMemoryBillRegistry, InMemoryUsagePublisher
from billing_ingest.service.load_bill import LoadResult, NotABillError, bill_status, load_bill
from billing_schemas.events import REJECTED_ROWS_CARRIED, BillSummary, RejectedRow

EA_COLUMNS = [
    "InvoiceSectionName",
    "AccountName",
    "AccountOwnerId",
    "SubscriptionId",
    "SubscriptionName",
    "ResourceGroup",
    "ResourceLocation",
    "Date",
    "ProductName",
    "MeterCategory",
    "MeterSubCategory",
    "MeterId",
    "MeterName",
    "MeterRegion",
    "UnitOfMeasure",
    "Quantity",
    "EffectivePrice",
    "CostInBillingCurrency",
    "CostCenter",
    "ConsumedService",
    "ResourceId",
    "Tags",
    "OfferId",
    "AdditionalInfo",
    "ServiceInfo1",
    "ServiceInfo2",
    "ResourceName",
    "ReservationId",
    "ReservationName",
    "UnitPrice",
    "ProductOrderId",
    "ProductOrderName",
    "Term",
    "PublisherType",
    "PublisherName",
    "ChargeType",
    "Frequency",
    "PricingModel",
    "AvailabilityZone",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrencyCode",
    "BillingPeriodStartDate",
    "BillingPeriodEndDate",
    "BillingProfileId",
    "BillingProfileName",
    "InvoiceSectionId",
    "IsAzureCreditEligible",
    "PartNumber",
    "PayGPrice",
    "PlanName",
    "ServiceFamily",
    "CostAllocationRuleName",
    "benefitId",
    "benefitName",
]


def _ea_row(cost: str) -> list[str]:
    cells = dict.fromkeys(EA_COLUMNS, "")
    cells |= {
        "SubscriptionId": "a1b2c3d4-0000-4000-8000-000000000001",
        "Date": "09/03/2024",
        "MeterCategory": "Virtual Machines",
        "Quantity": "24",
        "CostInBillingCurrency": cost,
        "ChargeType": "Usage",
        "PricingModel": "OnDemand",
        "BillingAccountId": "8611537",
        "BillingCurrencyCode": "EUR",
        "BillingPeriodStartDate": "09/01/2024",
    }
    return [cells[c] for c in EA_COLUMNS]


async def _load(path: Path) -> tuple[LoadResult, InMemoryUsagePublisher, InMemoryBillRegistry]:
    publisher, registry = InMemoryUsagePublisher(), InMemoryBillRegistry()
    result = await load_bill(path, publisher=publisher, registry=registry)
    return result, publisher, registry


async def test_every_row_one_field_short_is_a_rejection_with_its_row_number(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ea.csv"
    short = [",".join(_ea_row(f"1.{i}")[:-1]) for i in range(3)]  # 54 fields under 55
    path.write_text(",".join(EA_COLUMNS) + "\n" + "\n".join(short) + "\n")
    result, publisher, registry = await _load(path)
    summary = result.summary
    assert (summary.rows_read, summary.rows_accepted, summary.rows_rejected) == (3, 0, 3)
    assert summary.status == "rejected"
    rejected = [e.data for _, e in publisher.rejected_events]
    assert [r.row for r in rejected] == [2, 3, 4]
    assert all(r.reason == "row has 54 fields, the header has 55" for r in rejected)
    assert registry.rejections[summary.bill_id] == rejected
    assert publisher.usage_events == []


async def test_malformed_rows_after_the_last_good_batch_are_rejected_too(tmp_path: Path) -> None:
    """Good rows, then more malformed rows than one read block holds (1 MiB): the malformed
    blocks at the end yield no batch of their own."""
    good = [",".join(_ea_row("2.00")) for _ in range(5)]
    bad = [",".join(_ea_row("3.00")[:-1]) + ",x" * 200 for _ in range(4000)]  # 254 fields
    path = tmp_path / "ea.csv"
    path.write_text(",".join(EA_COLUMNS) + "\n" + "\n".join(good + bad) + "\n")
    assert path.stat().st_size > 2 << 20
    result, publisher, _ = await _load(path)
    summary = result.summary
    assert (summary.rows_read, summary.rows_accepted, summary.rows_rejected) == (4005, 5, 4000)
    assert summary.status == "partially_rejected"
    assert sorted(e.data.row or 0 for _, e in publisher.rejected_events) == list(range(7, 4007))


@pytest.mark.parametrize(
    "name", ["empty.csv", "empty.csv.gz", "empty.jsonl", "blank.csv", "spaces.csv"]
)
async def test_an_empty_file_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(b""))
    else:
        path.write_text({"blank.csv": "\n\n", "spaces.csv": "  \n \n"}.get(name, ""))
    publisher, registry = InMemoryUsagePublisher(), InMemoryBillRegistry()
    with pytest.raises(NotABillError) as refused:
        await load_bill(path, publisher=publisher, registry=registry)
    assert str(refused.value) == f"{name}: the file is empty. Nothing was published."
    assert registry.begun == []
    assert not publisher.usage_events
    assert not publisher.rejected_events
    assert not publisher.processed


@pytest.mark.parametrize("line_end", ["\n", "", "\r\n"])
async def test_a_header_only_file_is_refused_in_one_line(tmp_path: Path, line_end: str) -> None:
    path = tmp_path / "ea.csv"
    path.write_text(",".join(EA_COLUMNS) + line_end)
    publisher, registry = InMemoryUsagePublisher(), InMemoryBillRegistry()
    with pytest.raises(NotABillError) as refused:
        await load_bill(path, publisher=publisher, registry=registry)
    assert str(refused.value) == "ea.csv: the file has a header but no rows. Nothing was published."
    assert registry.begun == []
    assert publisher.processed == []


def test_a_bill_is_rejected_when_nothing_of_it_was_accepted() -> None:
    assert bill_status(accepted=0, rejected=4) == "rejected"
    assert bill_status(accepted=1, rejected=4) == "partially_rejected"
    assert bill_status(accepted=5, rejected=0) == "processed"


def _ea_file(rows: list[list[str]]) -> str:
    return "\n".join([",".join(EA_COLUMNS), *(",".join(r) for r in rows)]) + "\n"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "latin1.csv",
            _ea_file([_ea_row("1.00")]).encode() + "caf\xe9\n".encode("latin-1"),
            "line 3 is not UTF-8 text (byte 0xe9): save the file as UTF-8. Nothing was published.",
        ),
        (
            "utf16.csv",
            _ea_file([_ea_row("1.00")]).encode("utf-16"),
            "line 1 is not UTF-8 text (byte 0xff)",
        ),
        (
            "huge.csv",
            _ea_file(
                [_ea_row("1.00"), [*_ea_row("2.00")[:-1], "x" * 5_000_000], _ea_row("3.00")]
            ).encode(),
            "a line is longer than 1 MiB",
        ),
        (
            "wide.csv",
            (",".join(EA_COLUMNS + [f"x{i}" for i in range(300_000)]) + "\n").encode(),
            "a line is longer than 1 MiB",
        ),
        (
            "cut.csv.gz",
            gzip.compress(_ea_file([_ea_row(f"{n}.00") for n in range(50)]).encode())[:400],
            "Truncated compressed stream (an interrupted download?)",
        ),
        ("cut.parquet", b"PAR1" + b"\0" * 64, "starts like a Parquet file but cannot be read"),
    ],
)
async def test_a_file_that_is_not_text_we_read_is_refused_in_one_line(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    """Not UTF-8, a line longer than the read block, a cut compressed stream or Parquet
    footer: one line saying which (the CLI prints it and exits 2), never pyarrow's error."""
    path = tmp_path / name
    path.write_bytes(content)
    publisher, registry = InMemoryUsagePublisher(), InMemoryBillRegistry()
    with pytest.raises(NotABillError) as refused:
        await load_bill(path, publisher=publisher, registry=registry)
    assert str(refused.value).startswith(f"{name}: ")
    assert message in str(refused.value)
    assert not publisher.usage_events
    assert registry.done == {}


# the bill's event carries its first rejected rows, in row order: what the operators' bill
# report lists (notify reads no collection of ingest's)


async def test_the_bill_processed_event_carries_the_first_rejected_rows_in_row_order(
    tmp_path: Path,
) -> None:
    # rows 2, 4, 6, ... are malformed (found after their batch's good rows), rows 3, 5, 7, ...
    # have a bad amount (found as they are read): the order of rejection is not the row order
    rows = [
        ",".join(_ea_row("1.00")[:-1]) if i % 2 == 0 else ",".join(_ea_row("x")) for i in range(60)
    ]
    path = tmp_path / "ea.csv"
    path.write_text(",".join(EA_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    publisher, registry = InMemoryUsagePublisher(), InMemoryBillRegistry()
    result = await load_bill(path, publisher=publisher, registry=registry)
    assert result.summary.rows_rejected == 60
    [event] = publisher.processed
    carried = event.data.first_rejected_rows
    assert [r.row for r in carried] == list(range(2, 2 + REJECTED_ROWS_CARRIED))
    # the same rows, reasons and raw cells as ingest's store holds, first by row number
    stored = sorted(registry.rejections[result.summary.bill_id], key=lambda r: r.row or 0)
    assert carried == stored[:REJECTED_ROWS_CARRIED]
    assert carried[0].reason == "row has 54 fields, the header has 55"
    assert carried[1].column == "CostInBillingCurrency"


async def test_a_bill_without_rejected_rows_carries_none(tmp_path: Path) -> None:
    path = tmp_path / "ea.csv"
    path.write_text(",".join(EA_COLUMNS) + "\n" + ",".join(_ea_row("2.00")) + "\n")
    publisher = InMemoryUsagePublisher()
    await load_bill(path, publisher=publisher, registry=InMemoryBillRegistry())
    [event] = publisher.processed
    assert event.data.first_rejected_rows == []


def test_the_summary_refuses_more_rejected_rows_than_the_contract_carries() -> None:
    row = RejectedRow(reason="bad")
    figures = {
        "bill_id": "b",
        "file_name": "f.csv",
        "checksum_sha256": "0" * 64,
        "format": "focus",
        "status": "rejected",
        "billing_periods": [],
        "rows_read": 21,
        "rows_accepted": 0,
        "rows_rejected": 21,
        "billed_cost_totals": {},
    }
    BillSummary.model_validate(figures | {"first_rejected_rows": [row] * REJECTED_ROWS_CARRIED})
    with pytest.raises(ValidationError, match="at most 20 items"):
        BillSummary.model_validate(
            figures | {"first_rejected_rows": [row] * (REJECTED_ROWS_CARRIED + 1)}
        )
