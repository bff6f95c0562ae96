"""Google Cloud, Azure EA/MCA, OpenStack and FOCUS 1.1/1.2 bills through load_bill (with fakes).

Hand-computed billed totals per sub-account and currency (the fixtures' rows, in order):

gcp_billing.csv / gcp_billing.jsonl (billed = cost + credits):
  shop-prod USD: (24.00 - 4.80) + (10.00 - 10.00) + 7.30 + (1.234567 - 0.02) + (5.00 - 5.00)
                 + 3.02 tax = 19.20 + 0 + 7.30 + 1.214567 + 0 + 3.02 = 30.734567
  shop-dev USD: (2.40 - 0.48 - 0.32) + (0.3 - 0.1) - 1.00 adjustment = 1.60 + 0.2 - 1.00 = 0.80
  01A2B3-C4D5E6-F7A8B9 USD (rounding error, no project): 0.01
  berlin-app EUR: (12.50 - 2.50) + 3.333 + 2.53 tax = 15.863
  USD total 30.734567 + 0.80 + 0.01 = 31.544567; the 11th line's invoice.month is 2024/09.
azure_ea.csv (EUR):
  ...0001: 2.304 + 2.40 + 73.00 + 1.20 + 1.05 + 0.50 = 80.454
  ...0002: 0.12 + 1.84 - 0.50 + 20.00 = 21.46
  8611537 (rounding adjustment, no subscription): 0.01
  total 80.454 + 21.46 + 0.01 = 101.924; spreadsheet row 12 has ChargeType Bonus.
azure_mca.csv (USD):
  ...0011: 1.00 + 1.40 + 100.00 + 3.50 + 0.33 = 106.23
  ...0022: 0.45 + 0 - 2.00 + 15.00 = 13.45 ; total 119.68; row 10's date is 2024-13-45.
openstack_cloudkitty.csv:
  p-alpha EUR: 0.05 + 0.05 + 0.002 + 0.000125 = 0.102125
  p-beta EUR: 0.2 + 0.01 + 0.2 = 0.41 (row 8, qty -1, rejected)
  p-gamma CHF: 0.10 + 0.005 = 0.105 ; EUR total 0.512125
focus_1_2.csv:
  222222222222 USD: 1.20 + 0.70 + 0.19 - 0.50 - 0.10 = 1.49
  333333333333 USD: 0 + 0 + 36.00 = 36.00 ; USD total 37.49
  sub-eu-1 EUR: 4.44 + 1.11 = 5.55 ; row 12's ChargeCategory is Refund.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from billing_ingest.adapters.jsonl_reader import open_jsonl
from billing_ingest.adapters.memory import InMemoryBillRegistry, InMemoryUsagePublisher
from billing_ingest.adapters.readers import open_bill
from billing_ingest.domain import focus
from billing_ingest.domain.formats import JSON_DECIMAL_FIELDS, by_name, detect
from billing_ingest.service.load_bill import LoadResult, NotABillError, load_bill
from billing_schemas.events import ChargeCategory, LineType, UsageRecord, UsageRecorded

FIXTURES = Path(__file__).parent / "fixtures"
D = Decimal


@dataclass(frozen=True)
class Expected:
    fixture: str
    fmt: str
    counts: tuple[int, int, int]  # read, accepted, rejected
    per_sub_account: dict[tuple[str, str], Decimal]
    per_currency: dict[str, Decimal]
    rejected: tuple[int, str, str]  # row, column, part of the reason


GCP_TOTALS = {
    ("shop-prod", "USD"): D("30.734567"),
    ("shop-dev", "USD"): D("0.80"),
    ("01A2B3-C4D5E6-F7A8B9", "USD"): D("0.01"),
    ("berlin-app", "EUR"): D("15.863"),
}
EA_A, EA_B = "a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4-0000-4000-8000-000000000002"
MCA_1, MCA_2 = "b1b2c3d4-0000-4000-8000-000000000011", "b1b2c3d4-0000-4000-8000-000000000022"

CASES = [
    Expected(
        "gcp_billing.csv",
        "gcp",
        (14, 13, 1),
        GCP_TOTALS,
        {"USD": D("31.544567"), "EUR": D("15.863")},
        (12, "invoice.month", "is not a YYYYMM month"),
    ),
    Expected(
        "gcp_billing.jsonl",
        "gcp",
        (14, 13, 1),
        GCP_TOTALS,
        {"USD": D("31.544567"), "EUR": D("15.863")},
        (11, "invoice.month", "is not a YYYYMM month"),  # JSON lines: the 11th object
    ),
    Expected(
        "azure_ea.csv",
        "azure-ea",
        (12, 11, 1),
        {(EA_A, "EUR"): D("80.454"), (EA_B, "EUR"): D("21.46"), ("8611537", "EUR"): D("0.01")},
        {"EUR": D("101.924")},
        (12, "ChargeType", "charge type 'Bonus' is not one we rate"),
    ),
    Expected(
        "azure_mca.csv",
        "azure-mca",
        (10, 9, 1),
        {(MCA_1, "USD"): D("106.23"), (MCA_2, "USD"): D("13.45")},
        {"USD": D("119.68")},
        (10, "date", "is not a date"),
    ),
    Expected(
        "openstack_cloudkitty.csv",
        "openstack",
        (10, 9, 1),
        {
            ("p-alpha", "EUR"): D("0.102125"),
            ("p-beta", "EUR"): D("0.41"),
            ("p-gamma", "CHF"): D("0.105"),
        },
        {"EUR": D("0.512125"), "CHF": D("0.105")},
        (8, "qty", "qty -1 is negative"),
    ),
    Expected(
        "focus_1_2.csv",
        "focus-1.2",
        (11, 10, 1),
        {
            ("222222222222", "USD"): D("1.49"),
            ("333333333333", "USD"): D("36.00"),
            ("sub-eu-1", "EUR"): D("5.55"),
        },
        {"USD": D("37.49"), "EUR": D("5.55")},
        (12, "ChargeCategory", "'Refund' is not one of"),
    ),
]


async def _load(path: Path, fmt: str | None = None) -> tuple[LoadResult, InMemoryUsagePublisher]:
    publisher, registry = InMemoryUsagePublisher(), InMemoryBillRegistry()
    result = await load_bill(path, publisher=publisher, registry=registry, fmt=fmt)
    assert registry.done[result.summary.bill_id] == result.summary
    return result, publisher


def _by_row(publisher: InMemoryUsagePublisher) -> dict[int, UsageRecord]:
    return {e.data.source_ref.row: e.data for _, e in publisher.usage_events if e.data.source_ref}


@pytest.mark.parametrize("case", CASES, ids=[c.fixture for c in CASES])
async def test_each_format_loads_with_hand_computed_totals_and_one_rejected_row(
    case: Expected,
) -> None:
    result, publisher = await _load(FIXTURES / case.fixture)
    summary = result.summary
    assert summary.format == case.fmt
    assert (summary.rows_read, summary.rows_accepted, summary.rows_rejected) == case.counts
    assert summary.status == "partially_rejected"
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for key, event in publisher.usage_events:
        assert key == event.data.sub_account_id
        totals[event.data.sub_account_id, event.data.currency] += event.data.billed_cost
    assert dict(totals) == case.per_sub_account
    assert summary.billed_cost_totals == case.per_currency
    assert len({e.data.record_id for _, e in publisher.usage_events}) == case.counts[1]
    [(_, rejected)] = publisher.rejected_events
    row, column, reason = case.rejected
    assert (rejected.data.row, rejected.data.column) == (row, column)
    assert reason in rejected.data.reason
    assert [e.data.bill_id for e in publisher.processed] == [summary.bill_id]


@pytest.mark.parametrize("case", CASES, ids=[c.fixture for c in CASES])
def test_each_format_is_detected_from_its_header(case: Expected) -> None:
    fmt = detect(open_bill(FIXTURES / case.fixture).header)
    assert fmt is not None
    assert fmt.name == case.fmt


@pytest.mark.parametrize("fixture", ["gcp_billing.csv", "gcp_billing.jsonl"])
async def test_google_credits_are_netted_and_kept_on_the_line(fixture: str) -> None:
    _, publisher = await _load(FIXTURES / fixture)
    lines = [e.data for _, e in publisher.usage_events]
    sud = lines[0]  # 24.00 with a -4.80 sustained-use discount
    assert (sud.on_demand_cost, sud.billed_cost, sud.line_type) == (
        D("24.00"),
        D("19.20"),
        LineType.ON_DEMAND,
    )
    assert sud.credits is not None
    assert [(c.type, c.amount) for c in sud.credits] == [("SUSTAINED_USAGE_DISCOUNT", D("-4.80"))]
    assert (sud.billing_period, sud.sub_account_name, sud.tags) == (
        "2024-09",
        "Shop Prod",
        {"env": "prod"},
    )
    covered = lines[1]  # RAM fully covered by a resource-based CUD: owner not named
    assert (covered.line_type, covered.commitment_id, covered.commitment_owner) == (
        LineType.COMMITMENT_COVERED,
        "12-b34-c56-d78",
        None,
    )
    assert covered.billed_cost == 0
    fee = lines[2]
    assert (fee.charge_category, fee.line_type) == (
        ChargeCategory.PURCHASE,
        LineType.COMMITMENT_FEE,
    )
    spend_based = lines[6]  # 2.40 - 0.48 - 0.32 = 1.60, spend-based CUD bought on the account
    assert (spend_based.line_type, spend_based.commitment_owner, spend_based.billed_cost) == (
        LineType.COMMITMENT_COVERED,
        "payer",
        D("1.60"),
    )
    assert lines[7].billed_cost == D("0.2")  # 0.3 - 0.1 exactly: no float on the way
    categories = [(r.sub_account_id, r.charge_category) for r in lines[5:10]]
    assert categories == [
        ("shop-prod", ChargeCategory.TAX),
        ("shop-dev", ChargeCategory.USAGE),
        ("shop-dev", ChargeCategory.USAGE),
        ("shop-dev", ChargeCategory.ADJUSTMENT),
        ("01A2B3-C4D5E6-F7A8B9", ChargeCategory.ADJUSTMENT),
    ]


async def test_azure_ea_commitments_and_on_demand_cost() -> None:
    _, publisher = await _load(FIXTURES / "azure_ea.csv")
    rows = _by_row(publisher)
    reserved = rows[3]  # PayGPrice 0.192 x 24 h = 4.608 on demand; billed 2.40 amortized
    assert (reserved.line_type, reserved.on_demand_cost, reserved.billed_cost) == (
        LineType.COMMITMENT_COVERED,
        D("4.608"),
        D("2.40"),
    )
    assert reserved.commitment_id is not None
    assert reserved.commitment_id.endswith("/reservations/r-1111")
    assert (rows[4].charge_category, rows[4].line_type) == (
        ChargeCategory.PURCHASE,
        LineType.COMMITMENT_FEE,
    )
    assert rows[5].line_type is LineType.COMMITMENT_FEE  # UnusedReservation
    assert rows[6].commitment_id is not None  # savings plan: its benefitId
    assert rows[6].commitment_id.endswith("/savingsPlans/sp-2222")
    assert (rows[7].line_type, rows[7].on_demand_cost) == (LineType.ON_DEMAND, D("0.60"))  # spot
    assert (rows[9].charge_category, rows[9].line_type) == (ChargeCategory.CREDIT, LineType.REFUND)
    assert rows[10].sub_account_id == "8611537"  # rounding adjustment: the billing account
    assert (rows[11].charge_category, rows[11].line_type) == (
        ChargeCategory.PURCHASE,
        LineType.OTHER,
    )  # Marketplace purchase, not a commitment
    assert rows[13].tags == {"env": "prod", "team": "web"}  # EA tags without braces
    assert rows[2].charge_period_end.isoformat() == "2024-09-04T00:00:00+00:00"


async def test_azure_mca_prefers_the_payg_cost_column() -> None:
    _, publisher = await _load(FIXTURES / "azure_mca.csv")
    rows = _by_row(publisher)
    # paygCostInBillingCurrency 2.00 wins over PayGPrice 0.3 x 10 = 3.00
    assert (rows[3].line_type, rows[3].on_demand_cost) == (LineType.COMMITMENT_COVERED, D("2.00"))
    assert (rows[7].line_type, rows[7].billed_cost, rows[7].on_demand_cost) == (
        LineType.COMMITMENT_COVERED,
        D("0"),
        D("0.80"),
    )
    assert rows[2].billing_account_id.startswith("5e98e158")


async def test_openstack_entries_are_usage_of_their_project() -> None:
    _, publisher = await _load(FIXTURES / "openstack_cloudkitty.csv")
    rows = _by_row(publisher)
    first = rows[2]
    assert (first.provider, first.billing_account_id, first.sub_account_id) == (
        "OpenStack",
        "d-acme",
        "p-alpha",
    )
    assert (first.service_name, first.sku_id, first.list_cost) == (
        "instance",
        "m1.small",
        D("0.05"),
    )
    assert rows[9].billing_account_id == "p-gamma"  # no domain: the project itself
    # Unix seconds 1725152400 = 2024-09-01T01:00:00Z
    assert rows[11].charge_period_start.isoformat() == "2024-09-01T01:00:00+00:00"


async def test_focus_commitment_owner_follows_the_commitment_id() -> None:
    _, publisher = await _load(FIXTURES / "focus_1_2.csv")
    rows = _by_row(publisher)
    owners = {n: (rows[n].line_type, rows[n].commitment_owner) for n in (3, 4, 5, 6, 10)}
    assert owners == {
        3: (LineType.COMMITMENT_COVERED, "payer"),  # ARN of 111111111111 = BillingAccountId
        4: (LineType.COMMITMENT_COVERED, "account"),  # ARN of 333333333333 = SubAccountId
        5: (LineType.COMMITMENT_FEE, "account"),  # CommitmentDiscountStatus Unused
        6: (LineType.COMMITMENT_FEE, "account"),  # the RI's purchase
        10: (LineType.COMMITMENT_COVERED, None),  # an Azure reservation id names no account
    }
    assert rows[3].on_demand_cost == D("1.00")  # ListCost


def _drop_columns(source: Path, target: Path, columns: tuple[str, ...]) -> None:
    with source.open(newline="") as src, target.open("w", newline="") as out:
        reader = csv.DictReader(src)
        kept = [c for c in reader.fieldnames or [] if c not in columns]
        writer = csv.DictWriter(out, kept, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(reader)


async def test_focus_versions_are_told_apart_by_their_columns(tmp_path: Path) -> None:
    v11, v10 = tmp_path / "focus_1_1.csv", tmp_path / "focus_1_0.csv"
    _drop_columns(FIXTURES / "focus_1_2.csv", v11, focus.ADDED_IN_1_2)
    _drop_columns(v11, v10, focus.ADDED_IN_1_1)
    for path, name in ((v11, "focus-1.1"), (v10, "focus-1.0")):
        result, _ = await _load(path)
        assert result.summary.format == name
        assert result.summary.billed_cost_totals == {"USD": D("37.49"), "EUR": D("5.55")}


async def test_format_override_records_the_chosen_format_and_checks_the_header() -> None:
    result, _ = await _load(FIXTURES / "focus_1_2.csv", fmt="focus-1.0")
    assert result.summary.format == "focus-1.0"
    alias = by_name("focus")
    assert alias is not None
    assert alias.name == "focus-1.0"  # the name bills were recorded with before versions
    with pytest.raises(NotABillError, match=r"--format gcp, but the header lacks"):
        await _load(FIXTURES / "azure_ea.csv", fmt="gcp")
    with pytest.raises(NotABillError, match=r"--format 'azure' is not one of"):
        await _load(FIXTURES / "azure_ea.csv", fmt="azure")


@pytest.mark.parametrize(
    ("fixture", "gz_name"),
    [("focus_1_2.csv", "focus.csv.gz"), ("gcp_billing.jsonl", "gcp.jsonl.gz")],
)
async def test_gzipped_bills_read_like_the_plain_ones(
    tmp_path: Path, fixture: str, gz_name: str
) -> None:
    compressed = tmp_path / gz_name
    with (FIXTURES / fixture).open("rb") as src, gzip.open(compressed, "wb") as out:
        shutil.copyfileobj(src, out)
    plain, plain_pub = await _load(FIXTURES / fixture)
    packed, packed_pub = await _load(compressed)
    assert packed.summary.format == plain.summary.format
    assert packed.summary.billed_cost_totals == plain.summary.billed_cost_totals
    assert [e.data.record_id for _, e in packed_pub.usage_events] == [
        e.data.record_id for _, e in plain_pub.usage_events
    ]


async def test_a_bad_json_line_is_rejected_and_the_rest_read(tmp_path: Path) -> None:
    lines = (FIXTURES / "gcp_billing.jsonl").read_text().splitlines()
    path = tmp_path / "gcp.jsonl"
    path.write_text("\n".join([lines[0], '{"cost": 1.0, "broken": ', lines[1], ""]))
    result, publisher = await _load(path)
    assert (result.summary.rows_read, result.summary.rows_rejected) == (3, 1)
    [(_, rejected)] = publisher.rejected_events
    assert (rejected.data.row, rejected.data.column) == (2, None)
    assert "not a JSON object we can read" in rejected.data.reason
    assert sorted(_by_row(publisher)) == [1, 3]  # 19.20 and 0.00 of the fixture's first lines
    assert result.summary.billed_cost_totals == {"USD": D("19.20")}


def test_json_rows_do_not_depend_on_how_the_file_is_chunked() -> None:
    path = FIXTURES / "gcp_billing.jsonl"
    whole = open_jsonl(path, decimal_fields=JSON_DECIMAL_FIELDS)
    small = open_jsonl(path, decimal_fields=JSON_DECIMAL_FIELDS, chunk_bytes=700)
    whole_rows = [r for b in whole.batches() for r in b.rows]
    small_batches = list(small.batches())
    assert len(small_batches) > 3
    assert [r for b in small_batches for r in b.rows] == whole_rows
    starts = [b.first_row_number for b in small_batches]
    assert starts == [1 + sum(len(b.rows) for b in small_batches[:i]) for i in range(len(starts))]
    assert whole_rows[0]["cost"] == "24"  # the JSON number 24.00, exact, as text
    assert whole_rows[0]["credits"] == (
        '[{"amount":"-4.8","name":"Sustained Usage Discount",'
        '"full_name":"Sustained Usage Discount","id":"","type":"SUSTAINED_USAGE_DISCOUNT"}]'
    )


@pytest.mark.parametrize("case", CASES, ids=[c.fixture for c in CASES])
async def test_naming_each_format_gives_what_detection_gives(case: Expected) -> None:
    detected, _ = await _load(FIXTURES / case.fixture)
    named, _ = await _load(FIXTURES / case.fixture, fmt=case.fmt)
    assert named.summary == detected.summary


async def test_credits_travel_on_the_wire_as_decimal_strings() -> None:
    _, publisher = await _load(FIXTURES / "gcp_billing.jsonl")
    event = publisher.usage_events[6][1]  # 2.40 with -0.48 and -0.32 credits
    wire = json.loads(event.model_dump_json())
    assert [c["amount"] for c in wire["data"]["credits"]] == ["-0.48", "-0.32"]
    assert UsageRecorded.model_validate_json(event.model_dump_json()) == event
    assert json.loads(publisher.usage_events[0][1].model_dump_json())["data"]["tags"] == {
        "env": "prod"
    }
