"""Loading FOCUS bills: totals, idempotence and every kind of bad row (with fakes of the ports)."""

from __future__ import annotations

import csv
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from billing_ingest.adapters.memory import InMemoryBillRegistry, InMemoryUsagePublisher
from billing_ingest.service.load_bill import NotABillError, load_bill

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "demo" / "focus_sample.csv"


def _oracle_totals(path: Path) -> dict[tuple[str, str], Decimal]:
    """Independent reading with the csv module: billed cost per (sub-account, currency)."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            account = (
                row["SubAccountId"]
                if row["SubAccountId"] not in ("", "NULL")
                else row["BillingAccountId"]
            )
            totals[account, row["BillingCurrency"]] += Decimal(row["BilledCost"])
    return dict(totals)


async def test_the_real_focus_sample_loads_every_row_with_exact_totals() -> None:
    publisher, registry = InMemoryUsagePublisher(), InMemoryBillRegistry()
    result = await load_bill(SAMPLE, publisher=publisher, registry=registry, batch_rows=128)
    summary = result.summary
    assert (summary.rows_read, summary.rows_accepted, summary.rows_rejected) == (1000, 1000, 0)
    assert summary.status == "processed"
    assert summary.billing_periods == ["2024-09", "2024-10"]

    got: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for key, event in publisher.usage_events:
        assert key == event.data.sub_account_id
        got[event.data.sub_account_id, event.data.currency] += event.data.billed_cost
    assert dict(got) == _oracle_totals(SAMPLE)
    assert summary.billed_cost_totals["USD"] == sum(got.values(), Decimal(0))
    # a hand-checked figure: the sample's first row bills 0.00000080000 USD to 51738928782
    first = publisher.usage_events[0][1].data
    assert (first.sub_account_id, first.billed_cost) == ("51738928782", Decimal("0.00000080000"))
    assert first.source_ref is not None
    assert first.source_ref.row == 2
    assert len({e.data.record_id for _, e in publisher.usage_events}) == 1000
    assert [e.data.bill_id for e in publisher.processed] == [summary.bill_id]


async def test_loading_the_same_file_twice_publishes_nothing_the_second_time() -> None:
    publisher, registry = InMemoryUsagePublisher(), InMemoryBillRegistry()
    first = await load_bill(SAMPLE, publisher=publisher, registry=registry)
    published = len(publisher.usage_events)
    second = await load_bill(SAMPLE, publisher=publisher, registry=registry)
    assert second.already_loaded
    assert not first.already_loaded
    assert second.summary == first.summary
    assert len(publisher.usage_events) == published


async def test_record_ids_are_stable_across_loads(tmp_path: Path) -> None:
    copy = tmp_path / "again.csv"
    copy.write_bytes(SAMPLE.read_bytes())
    a, b = InMemoryUsagePublisher(), InMemoryUsagePublisher()
    await load_bill(SAMPLE, publisher=a, registry=InMemoryBillRegistry())
    await load_bill(copy, publisher=b, registry=InMemoryBillRegistry())
    assert [e.data.record_id for _, e in a.usage_events] == [
        e.data.record_id for _, e in b.usage_events
    ]


HEADER = (
    "BilledCost,BillingAccountId,BillingCurrency,BillingPeriodStart,ChargeCategory,"
    "ChargePeriodStart,ChargePeriodEnd,ProviderName,ServiceName,SubAccountId\n"
)
GOOD = (
    "1.50,B1,USD,2024-09-01 00:00:00,Usage,2024-09-02 00:00:00,2024-09-02 01:00:00,"
    "AWS,Amazon EC2,A1\n"
)


@pytest.mark.parametrize(
    ("bad_row", "column", "reason"),
    [
        (
            "abc,B1,USD,2024-09-01,Usage,2024-09-02,2024-09-02,AWS,EC2,A1\n",
            "BilledCost",
            "not a decimal",
        ),
        (
            "1.0,B1,XYZ,2024-09-01,Usage,2024-09-02,2024-09-02,AWS,EC2,A1\n",
            "BillingCurrency",
            "ISO 4217",
        ),
        (
            "1.0,B1,USD,yesterday,Usage,2024-09-02,2024-09-02,AWS,EC2,A1\n",
            "BillingPeriodStart",
            "date-time",
        ),
        ("1.0,B1,USD,2024-09-01,Usage,2024-09-02,2024-09-02,AWS,,A1\n", "ServiceName", "required"),
        (
            "1.0,B1,USD,2024-09-01,Bogus,2024-09-02,2024-09-02,AWS,EC2,A1\n",
            "ChargeCategory",
            "not one of",
        ),
        ("1.0,B1,USD,2024-09-01,Usage,2024-09-02\n", None, "the header has 10"),
    ],
)
async def test_a_bad_row_is_rejected_with_its_row_column_and_reason_and_the_rest_goes_through(
    tmp_path: Path, bad_row: str, column: str | None, reason: str
) -> None:
    path = tmp_path / "bill.csv"
    path.write_text(HEADER + GOOD + bad_row + GOOD.replace("1.50", "2.25"))
    publisher, registry = InMemoryUsagePublisher(), InMemoryBillRegistry()
    result = await load_bill(path, publisher=publisher, registry=registry)
    assert (
        result.summary.rows_read,
        result.summary.rows_accepted,
        result.summary.rows_rejected,
    ) == (3, 2, 1)
    assert result.summary.status == "partially_rejected"
    assert [e.data.billed_cost for _, e in publisher.usage_events] == [
        Decimal("1.50"),
        Decimal("2.25"),
    ]
    [(_, rejected)] = publisher.rejected_events
    assert rejected.data.file == "bill.csv"
    assert rejected.data.row == 3
    assert rejected.data.column == column
    assert reason in rejected.data.reason
    assert registry.rejections[result.summary.bill_id] == [rejected.data]


async def test_a_file_that_is_not_a_bill_fails_clearly_and_publishes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("name,amount\nfoo,1\n")
    publisher, registry = InMemoryUsagePublisher(), InMemoryBillRegistry()
    with pytest.raises(
        NotABillError,
        match=r"notes.csv: not a bill in a format we read \(focus-1.2: missing BilledCost",
    ):
        await load_bill(path, publisher=publisher, registry=registry)
    assert publisher.usage_events == []
    assert publisher.rejected_events == []
    assert registry.begun == []


async def test_rows_repeated_word_for_word_are_two_lines_not_one(tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_text(HEADER + GOOD + GOOD)
    publisher = InMemoryUsagePublisher()
    result = await load_bill(path, publisher=publisher, registry=InMemoryBillRegistry())
    assert result.summary.rows_accepted == 2
    ids = [e.data.record_id for _, e in publisher.usage_events]
    assert len(set(ids)) == 2
    again = InMemoryUsagePublisher()
    await load_bill(path, publisher=again, registry=InMemoryBillRegistry())
    assert [e.data.record_id for _, e in again.usage_events] == ids


async def test_the_same_bill_as_parquet_gives_the_same_records(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    # the sample as Parquet with typed columns, money as decimal128 like provider exports
    table = pacsv.read_csv(
        SAMPLE,
        convert_options=pacsv.ConvertOptions(
            null_values=["NULL", ""],
            strings_can_be_null=True,
            column_types={"BilledCost": pa.decimal128(20, 11), "SubAccountId": pa.string()},
        ),
    )
    parquet = tmp_path / "focus_sample.parquet"
    pq.write_table(table, parquet, row_group_size=300)

    from_csv, from_parquet = InMemoryUsagePublisher(), InMemoryUsagePublisher()
    await load_bill(SAMPLE, publisher=from_csv, registry=InMemoryBillRegistry())
    result = await load_bill(parquet, publisher=from_parquet, registry=InMemoryBillRegistry())
    assert (result.summary.format, result.summary.rows_read, result.summary.rows_rejected) == (
        "focus-1.0",
        1000,
        0,
    )
    csv_costs = [(e.data.sub_account_id, e.data.billed_cost) for _, e in from_csv.usage_events]
    pq_costs = [(e.data.sub_account_id, e.data.billed_cost) for _, e in from_parquet.usage_events]
    assert pq_costs == csv_costs
    assert pq_costs[0] == ("51738928782", Decimal("0.00000080000"))
