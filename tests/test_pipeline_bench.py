"""The pipeline benchmark's workload and arithmetic, without infrastructure: its catalog loads as
``billing catalog apply`` loads it, ingest accepts every line of its bill and bills each to the
customer and provider it was written for, and a stage's rate is read from its samples as
docs/operations.md says."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from pipeline_probes import stage_rate
from pipeline_workload import (
    PERIOD,
    Workload,
    accounts_of,
    catalog_document,
    customer_id,
    write_bill,
)

from billing_ingest.adapters.memory import InMemoryBillRegistry, InMemoryUsagePublisher
from billing_ingest.service.load_bill import load_bill
from billing_invoicing.entrypoints.cli import load_catalog_file


def test_the_catalog_loads_as_billing_catalog_apply_loads_it(tmp_path: Path) -> None:
    workload = Workload(lines=100, customers=12)
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog_document(workload), sort_keys=False))
    catalog = load_catalog_file(path)
    assert [c.id for c in catalog.customers] == [customer_id(c) for c in range(12)]
    assert {c.price_list for c in catalog.customers} == {
        "standard",
        "partner",
        "volume",
        "enterprise",
    }
    subscribed = [c.id for c in catalog.customers if c.subscriptions]
    assert subscribed == [customer_id(0), customer_id(5), customer_id(10)]
    assert all(len(c.accounts) == 4 for c in catalog.customers)


@pytest.mark.parametrize(
    "workload", [Workload(2_500, 7), Workload(1_200, 9, "single")], ids=["spread", "single"]
)
async def test_ingest_accepts_every_line_and_each_goes_to_its_customer(
    tmp_path: Path, workload: Workload
) -> None:
    bill = write_bill(workload, tmp_path / "bill.csv")
    publisher = InMemoryUsagePublisher()
    result = await load_bill(bill, publisher=publisher, registry=InMemoryBillRegistry())

    lines = workload.lines
    assert (result.summary.rows_accepted, result.summary.rows_rejected) == (lines, 0)
    records = [event.data for _, event in publisher.usage_events]
    assert len({r.record_id for r in records}) == lines  # every line a distinct record
    assert {r.billing_period for r in records} == {PERIOD}
    owner = {
        (provider, account): c
        for c in range(workload.customer_count)
        for provider, ids in accounts_of(c).items()
        for account in ids
    }
    per_customer = Counter(owner[r.provider, r.sub_account_id] for r in records)
    # line i goes to customer i mod C: the customers' shares differ by one line at most
    assert sorted(per_customer) == list(range(workload.customer_count))
    assert max(per_customer.values()) - min(per_customer.values()) <= 1


def test_a_workload_gives_each_customer_at_least_one_line() -> None:
    with pytest.raises(ValueError, match="cannot give each of 10 customers one"):
        Workload(lines=9, customers=10)
    assert Workload(lines=9, customers=10, profile="single").customer_count == 1


def test_a_stage_rate_runs_from_the_sample_before_it_moved_to_the_first_at_its_count() -> None:
    series = [(0.0, 0), (1.0, 0), (2.0, 100), (3.0, 250), (4.0, 300), (5.0, 300)]
    assert stage_rate(series) == {"records": 300, "seconds": 3.0, "records_per_second": 100.0}


def test_a_stage_that_never_moved_has_no_rate() -> None:
    assert stage_rate([(0.0, 0), (1.0, 0)]) == {
        "records": 0,
        "seconds": None,
        "records_per_second": None,
    }
    assert stage_rate([]) == {"records": 0, "seconds": None, "records_per_second": None}
