"""AWS CUR, legacy and 2.0: the same ten hand-written lines read the same way.

Hand-computed totals (billed = unblended cost), payer 111111111111:
  222222222222: 0.1040 (Usage) + 0 (RI-covered) + 52.416 (RIFee) + 5.00 (Tax) - 0.52 (EDP)
                = 57.0000 USD
  333333333333: 9.60 (SP-covered) - 2.88 (negation) + 6.72 (SP fee) - 1.50 (credit)
                = 11.94 USD; its S3 line (row 11) has a negative usage amount: rejected.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from billing_ingest.adapters.memory import InMemoryBillRegistry, InMemoryUsagePublisher
from billing_ingest.service.load_bill import load_bill
from billing_schemas.events import ChargeCategory, LineType

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    ("fixture", "fmt", "tag_key"),
    [("aws_cur_legacy.csv", "aws-cur", "user:env"), ("aws_cur2.csv", "aws-cur2", "user_env")],
)
async def test_cur_lines_are_normalized_with_hand_computed_totals(
    fixture: str, fmt: str, tag_key: str
) -> None:
    publisher = InMemoryUsagePublisher()
    result = await load_bill(
        FIXTURES / fixture, publisher=publisher, registry=InMemoryBillRegistry()
    )
    summary = result.summary
    assert summary.format == fmt
    assert (summary.rows_read, summary.rows_accepted, summary.rows_rejected) == (10, 9, 1)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for key, event in publisher.usage_events:
        assert key == event.data.sub_account_id
        totals[event.data.sub_account_id] += event.data.billed_cost
    assert dict(totals) == {"222222222222": Decimal("57.0000"), "333333333333": Decimal("11.94")}
    assert summary.billed_cost_totals == {"USD": Decimal("68.9400")}

    records = {
        e.data.source_ref.row: e.data for _, e in publisher.usage_events if e.data.source_ref
    }
    ri = records[3]
    assert (ri.line_type, ri.commitment_owner, ri.on_demand_cost, ri.effective_cost) == (
        LineType.COMMITMENT_COVERED,
        "payer",
        Decimal("74.88"),
        Decimal("52.416"),
    )
    sp = records[5]
    assert (sp.line_type, sp.commitment_owner, sp.effective_cost) == (
        LineType.COMMITMENT_COVERED,
        "account",
        Decimal("6.72"),
    )
    assert records[6].line_type is LineType.COMMITMENT_NEGATION
    assert (records[4].charge_category, records[4].line_type) == (
        ChargeCategory.PURCHASE,
        LineType.COMMITMENT_FEE,
    )
    assert (records[8].charge_category, records[9].charge_category) == (
        ChargeCategory.TAX,
        ChargeCategory.CREDIT,
    )
    assert records[10].line_type is LineType.DISCOUNT
    first = records[2]
    assert (first.billing_account_id, first.billing_period, first.region, first.tags) == (
        "111111111111",
        "2024-09",
        "us-east-1",
        {tag_key: "prod"},
    )
    assert first.service_name == "Amazon Elastic Compute Cloud"

    [(_, rejected)] = publisher.rejected_events
    assert rejected.data.row == 11
    assert rejected.data.column in {"lineItem/UsageAmount", "line_item_usage_amount"}
    assert "negative on a Usage line" in rejected.data.reason


async def test_an_unknown_line_item_type_is_rejected_by_name(tmp_path: Path) -> None:
    text = (FIXTURES / "aws_cur_legacy.csv").read_text().replace(",Tax,", ",FutureThing,")
    path = tmp_path / "cur.csv"
    path.write_text(text)
    publisher = InMemoryUsagePublisher()
    result = await load_bill(path, publisher=publisher, registry=InMemoryBillRegistry())
    assert result.summary.rows_rejected == 2
    reasons = {e.data.row: e.data.reason for _, e in publisher.rejected_events}
    assert reasons[8] == "line item type 'FutureThing' is not one we rate"


@pytest.mark.parametrize("fixture", ["aws_cur_legacy.csv", "aws_cur2.csv"])
async def test_cur_as_parquet_gives_the_records_the_csv_gives(fixture: str, tmp_path: Path) -> None:
    """AWS delivers CUR as Parquet too, with costs as doubles: each double is read back as the
    shortest decimal that round-trips (0.104, not 0.10399999...), never summed as a float."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pacsv.read_csv(FIXTURES / fixture)  # pyarrow's own types: costs become float64
    assert "double" in {str(t) for t in table.schema.types}
    parquet = tmp_path / fixture.replace(".csv", ".parquet")
    pq.write_table(table, parquet, row_group_size=4)

    from_csv, from_parquet = InMemoryUsagePublisher(), InMemoryUsagePublisher()
    await load_bill(FIXTURES / fixture, publisher=from_csv, registry=InMemoryBillRegistry())
    result = await load_bill(parquet, publisher=from_parquet, registry=InMemoryBillRegistry())
    assert (result.summary.rows_read, result.summary.rows_rejected) == (10, 1)

    def lines(publisher: InMemoryUsagePublisher) -> list[tuple[str, str, Decimal]]:
        return [
            (e.data.sub_account_id, e.data.line_type.value, e.data.billed_cost)
            for _, e in publisher.usage_events
        ]

    assert lines(from_parquet) == lines(from_csv)
    assert sum(b for _, _, b in lines(from_parquet)) == Decimal("57.0000") + Decimal("11.94")
