"""The columnar fast path gives exactly the records the row mapper gives, row for row.

Each file is loaded twice: as ingest does it (columnar path, rows in unusual forms handed to the
row mapper), and with the columnar path switched off (every row through the row mapper, the
reference). The published records, the rejections and the figures must be identical.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing_ingest.adapters.memory import InMemoryBillRegistry, InMemoryUsagePublisher
from billing_ingest.domain import formats
from billing_ingest.service.load_bill import load_bill

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).parent / "fixtures"

HEADER = (
    "BilledCost,BillingAccountId,BillingCurrency,BillingPeriodStart,ChargeCategory,ChargeClass,"
    "ChargePeriodStart,ChargePeriodEnd,ProviderName,ServiceName,SubAccountId,ChargeDescription,"
    "PricingQuantity,ListCost,CommitmentDiscountId,CommitmentDiscountStatus,Tags\n"
)
# rows in every form a cell can take: plain ones (fast path) and the others (row mapper)
TRICKY_ROWS = [
    # plain
    "1.50,111,USD,2024-09-01 00:00:00,Usage,,2024-09-02 00:00:00,2024-09-02 01:00:00,AWS,EC2,A1,"
    'plain,2,1.70,,,"{""team"": ""web""}"',
    # quotes and a backslash in the description, non-ASCII, padded cells, lower-case currency
    '" 2.25 ",111, usd ,2024-09-01,usage,,2024-09-02T00:00:00Z,2024-09-02T01:00:00+00:00,AWS,'
    'EC2,A1,"say ""hi"" \\ café",3,,,,',
    # a tab in the description (control character), an exponent, a zone that is not UTC
    "1E+1,111,EUR,2024-09-01 00:00:00,Usage,,2024-09-02 02:00:00+02:00,2024-09-02 03:00:00,AWS,"
    'S3,A2,"tab\there",0.5E1,,,,',
    # tags that are not all strings, a correction with a negative quantity
    "-0.40,111,USD,2024-09-01 00:00:00,Usage,Correction,2024-09-03 00:00:00,2024-09-03 01:00:00,"
    'AWS,EC2,A1,fix,-1,-0.40,,,"{""n"": 3, ""ok"": true}"',
    # commitment-covered and unused commitment lines, with an owner in the id
    "0,111,USD,2024-09-01 00:00:00,Usage,,2024-09-04 00:00:00,2024-09-04 01:00:00,AWS,EC2,A1,ri,"
    "1,0.10,arn:aws:ec2:us-east-1:111:reserved-instances/r-1,Used,",
    "0.05,111,USD,2024-09-01 00:00:00,Usage,,2024-09-04 00:00:00,2024-09-04 01:00:00,AWS,EC2,A1,"
    "idle,1,,arn:aws:ec2:us-east-1:A1:reserved-instances/r-2,Unused,",
    # rejected either way: a bad amount, a bad date, an unknown currency, Tags not an object
    "abc,111,USD,2024-09-01,Usage,,2024-09-02,2024-09-02,AWS,EC2,A1,x,1,,,,",
    "1,111,USD,2024-09-31,Usage,,2024-09-02,2024-09-02,AWS,EC2,A1,x,1,,,,",
    "1,111,XYZ,2024-09-01,Usage,,2024-09-02,2024-09-02,AWS,EC2,A1,x,1,,,,",
    '1,111,USD,2024-09-01,Usage,,2024-09-02,2024-09-02,AWS,EC2,A1,x,1,,,,"[1]"',
    # a negative quantity with a positive cost: the wrong sign
    "2,111,USD,2024-09-01,Usage,,2024-09-02,2024-09-02,AWS,EC2,A1,x,-1,,,,",
    # the plain row again, word for word: a second line, not a duplicate
    "1.50,111,USD,2024-09-01 00:00:00,Usage,,2024-09-02 00:00:00,2024-09-02 01:00:00,AWS,EC2,A1,"
    'plain,2,1.70,,,"{""team"": ""web""}"',
]


def _published(publisher: InMemoryUsagePublisher) -> dict[str, dict[str, Any]]:
    return {e.data.record_id: e.data.model_dump(mode="json") for _, e in publisher.usage_events}


async def _load_both(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[InMemoryUsagePublisher, InMemoryUsagePublisher, Any, Any]:
    fast = InMemoryUsagePublisher()
    fast_result = await load_bill(path, publisher=fast, registry=InMemoryBillRegistry())
    with monkeypatch.context() as patch:
        patch.setattr(
            formats,
            "FORMATS",
            tuple(dataclasses.replace(f, columnar=None) for f in formats.FORMATS),
        )
        reference = InMemoryUsagePublisher()
        reference_result = await load_bill(
            path, publisher=reference, registry=InMemoryBillRegistry()
        )
    return fast, reference, fast_result, reference_result


@pytest.mark.parametrize(
    "path",
    [ROOT / "demo" / "focus_sample.csv", FIXTURES / "focus_1_2.csv"],
    ids=["focus-1.0-sample", "focus-1.2-fixture"],
)
async def test_the_fast_path_publishes_what_the_row_mapper_publishes(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, reference, fast_result, reference_result = await _load_both(path, monkeypatch)
    assert fast_result.summary == reference_result.summary
    assert _published(fast) == _published(reference)
    assert len(_published(fast)) == fast_result.summary.rows_accepted > 0
    assert [e.data for _, e in fast.rejected_events] == [
        e.data for _, e in reference.rejected_events
    ]


async def test_cells_in_every_form_give_the_same_records_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tricky.csv"
    path.write_text(HEADER + "\n".join(TRICKY_ROWS) + "\n", encoding="utf-8")
    fast, reference, fast_result, reference_result = await _load_both(path, monkeypatch)
    assert fast_result.summary == reference_result.summary
    assert _published(fast) == _published(reference)
    # 12 rows: 5 rejected (bad amount, bad date, XYZ, Tags [1], wrong sign), 7 accepted
    summary = fast_result.summary
    assert (summary.rows_read, summary.rows_accepted, summary.rows_rejected) == (12, 7, 5)
    rejected = {e.data.row: (e.data.column, e.data.reason) for _, e in fast.rejected_events}
    assert rejected == {
        8: ("BilledCost", "BilledCost 'abc' is not a decimal number"),
        9: ("BillingPeriodStart", "BillingPeriodStart '2024-09-31' is not a date-time"),
        10: ("BillingCurrency", "'XYZ' is not an ISO 4217 currency code"),
        11: ("Tags", "Tags is not a JSON object"),
        12: (
            "PricingQuantity",
            "PricingQuantity -1 is negative but the billed cost 2 is positive on a on_demand line",
        ),
    }
    records = {r["source_ref"]["row"]: r for r in _published(fast).values()}
    assert records[3]["description"] == 'say "hi" \\ café'
    assert records[3]["billed_cost"] == "2.25"
    assert records[3]["currency"] == "USD"
    assert records[4]["billed_cost"] == "10"
    assert records[4]["charge_period_start"] == "2024-09-02T00:00:00Z"  # 02:00 at +02:00
    assert records[5]["charge_class"] == "correction"
    assert records[5]["tags"] == {"n": "3", "ok": "True"}
    assert records[6]["line_type"] == "commitment_covered"
    assert records[6]["commitment_owner"] == "payer"
    assert records[7]["line_type"] == "commitment_fee"
    assert records[7]["commitment_owner"] == "account"
    assert records[13]["record_id"] != records[2]["record_id"]


async def test_most_rows_of_a_real_bill_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards the speed: if the fast path refused the sample's rows, the load would still be
    right but ten times slower."""
    slow_rows: list[int] = []
    from billing_ingest.service import load_bill as module

    original = module._Load.add_row

    async def counting(self: Any, row: Any, row_number: int, content: Any = None) -> None:
        slow_rows.append(row_number)
        await original(self, row, row_number, content)

    monkeypatch.setattr(module._Load, "add_row", counting)
    result = await load_bill(
        ROOT / "demo" / "focus_sample.csv",
        publisher=InMemoryUsagePublisher(),
        registry=InMemoryBillRegistry(),
    )
    # the sample's rows with exponents (1.000E-8) or negative quantities go the row path
    assert result.summary.rows_read == 1000
    assert len(slow_rows) < 50


async def test_rows_after_a_malformed_row_keep_their_numbers(tmp_path: Path) -> None:
    """pyarrow skips a row it cannot split; the rows after it keep their own numbers."""
    good = TRICKY_ROWS[0]
    path = tmp_path / "holes.csv"
    # rows 2, 3 good; 4 malformed; 5 good; 6 malformed; 7 good
    path.write_text(HEADER + "\n".join([good, good, "1,2", good, "x", good]) + "\n")
    publisher = InMemoryUsagePublisher()
    result = await load_bill(path, publisher=publisher, registry=InMemoryBillRegistry())
    assert (result.summary.rows_read, result.summary.rows_rejected) == (6, 2)
    assert [e.data.source_ref.row for _, e in publisher.usage_events if e.data.source_ref] == [
        2,
        3,
        5,
        7,
    ]
    assert sorted(e.data.row or 0 for _, e in publisher.rejected_events) == [4, 6]


async def test_amounts_beyond_the_bounds_of_money_are_rejected_per_row_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def row(cost: str) -> str:
        return (
            f"{cost},111,USD,2024-09-01 00:00:00,Usage,,2024-09-02 00:00:00,"
            "2024-09-02 01:00:00,AWS,EC2,A1,x,1,,,,"
        )

    rows = [
        row("1.50"),
        row("9" * 30),  # canonical, but 10^30: went onto the wire as is before
        row("1" + "0" * 200_000),  # 200 kB of digits in one cell
        row("1E+999999999999999999"),
        row("0.000000000000000000001"),  # canonical with 21 decimals: the row path, accepted
        row("2.50"),
    ]
    path = tmp_path / "hostile.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    fast, reference, fast_result, reference_result = await _load_both(path, monkeypatch)
    assert fast_result.summary == reference_result.summary
    assert _published(fast) == _published(reference)
    rejected = {e.data.row: e.data.reason for _, e in fast.rejected_events}
    assert set(rejected) == {3, 4, 5}
    assert rejected[3].startswith("BilledCost: amount too large:")
    assert rejected[4].startswith("BilledCost: too many digits:")
    assert rejected[5].startswith("BilledCost: amount too large:")
    assert all(len(reason) < 300 for reason in rejected.values())
    costs = sorted(r["billed_cost"] for r in _published(fast).values())
    assert costs == ["0.000000000000000000001", "1.50", "2.50"]


async def test_control_characters_and_the_separator_in_cells_give_the_same_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path writes JSON strings with only quotes and backslashes escaped: a row with
    a control character (a tab, a line break in a quoted cell, U+001F) must not reach it."""

    def row(description: str, cost: str = "1.50") -> str:
        return (
            f"{cost},111,USD,2024-09-01 00:00:00,Usage,,2024-09-02 00:00:00,"
            f"2024-09-02 01:00:00,AWS,EC2,A1,{description},2,,,,"
        )

    rows = [
        row("plain"),
        row('"tab\there"'),
        row('"two\nlines"'),
        row('"unit\x1fseparator"'),
        row('"quote "" and \\ backslash"'),
        row("plain", "2.75"),
    ]
    path = tmp_path / "controls.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    fast, reference, fast_result, reference_result = await _load_both(path, monkeypatch)
    assert fast_result.summary == reference_result.summary
    assert _published(fast) == _published(reference)
    descriptions = sorted(r["description"] for r in _published(fast).values())
    assert descriptions == sorted(
        [
            "plain",
            "tab\there",
            "two\nlines",
            "unit\x1fseparator",
            'quote " and \\ backslash',
            "plain",
        ]
    )


async def test_bill_totals_keep_every_digit_of_the_amounts(tmp_path: Path) -> None:
    """Amounts on the wire may have 40 digits (docs/money.md); the default decimal context
    keeps 28, which rounded the bill's totals."""
    big = "123456789012345678901234.1234567890123456"
    rows = [
        f"{cost},111,USD,2024-09-01 00:00:00,Usage,,2024-09-02 00:00:00,"
        f"2024-09-02 01:00:00,AWS,EC2,A1,row {i},1,,,,"
        for i, cost in enumerate([big, "0.0000000000000001", big])
    ]
    path = tmp_path / "digits.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    for columnar in (True, False):
        with pytest.MonkeyPatch.context() as patch:
            if not columnar:
                patch.setattr(
                    formats,
                    "FORMATS",
                    tuple(dataclasses.replace(f, columnar=None) for f in formats.FORMATS),
                )
            result = await load_bill(
                path, publisher=InMemoryUsagePublisher(), registry=InMemoryBillRegistry()
            )
        assert result.summary.billed_cost_totals == {
            "USD": Decimal("246913578024691357802468.2469135780246913")
        }
