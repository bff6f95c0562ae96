"""Rejected rows of every format are kept in the real registry with their raw cells.

Column names of real bills hold characters a MongoDB-wire database refuses in a key
(Google's ``service.id``, ``project.labels``; CloudKitty's ``vol.qty`` as the JSON reader
flattens it, ``groupby.project_id`` in CloudKitty's API output): the registry must store them
all, and give back the very cells it was given.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from billing_ingest.adapters.bill_registry import MongoBillRegistry
from billing_ingest.adapters.memory import InMemoryUsagePublisher
from billing_ingest.service.load_bill import load_bill
from billing_schemas.events import RejectedRow

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"

ONE_REJECTED_ROW = [
    "aws_cur_legacy.csv",
    "aws_cur2.csv",
    "azure_ea.csv",
    "azure_mca.csv",
    "focus_1_2.csv",
    "gcp_billing.csv",
    "gcp_billing.jsonl",
    "openstack_cloudkitty.csv",
]


@pytest.mark.parametrize("fixture", [*ONE_REJECTED_ROW, "cloudkitty_dataframes.json"])
async def test_a_rejected_row_of_each_format_is_stored_with_its_raw_cells(
    fixture: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    registry = MongoBillRegistry(mongo_db)
    await registry.ensure_indexes()
    publisher = InMemoryUsagePublisher()
    result = await load_bill(
        FIXTURES / fixture, publisher=publisher, registry=registry, currency="EUR"
    )
    assert result.summary.status == "partially_rejected"
    [(_, published)] = publisher.rejected_events
    [stored] = await registry.rejections(result.summary.bill_id)
    assert stored == published.data
    assert stored.raw  # the cells themselves, not an empty shell
    bill = await registry.bill(result.summary.bill_id)
    assert bill is not None
    assert bill["status"] == "partially_rejected"


async def test_dotted_and_dollar_column_names_survive_the_registry(
    mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    """A Google export row with a bad cost, and extra columns named as no key may be."""
    header = (
        "billing_account_id,service.id,service.description,usage_start_time,usage_end_time,"
        "project.id,project.labels,cost,currency,invoice.month,$extra\n"
    )
    row = (
        "01A2B3-C4D5E6-F7A8B9,6F81-5844-456A,Compute Engine,2024-09-03 00:00:00 UTC,"
        '2024-09-04 00:00:00 UTC,shop-prod,"[{""key"": ""team"", ""value"": ""web""}]",'
        "twelve,USD,202409,x\n"
    )
    path = tmp_path / "gcp.csv"
    path.write_text(header + row)
    registry = MongoBillRegistry(mongo_db)
    publisher = InMemoryUsagePublisher()
    result = await load_bill(path, publisher=publisher, registry=registry)
    [stored] = await registry.rejections(result.summary.bill_id)
    assert (stored.row, stored.column) == (2, "cost")
    assert stored.raw["service.id"] == "6F81-5844-456A"
    assert stored.raw["project.labels"] == '[{"key": "team", "value": "web"}]'
    assert stored.raw["$extra"] == "x"
    assert stored.raw["cost"] == "twelve"


async def test_a_batch_of_many_rejected_rows_is_stored(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    """FerretDB v1.24 never answers an update command of 100 statements or more: rejections
    are written as whole documents (replaced by id), which it takes in any number."""
    registry = MongoBillRegistry(mongo_db)
    await registry.ensure_indexes()
    rows = [
        RejectedRow(bill_id="bill-x", file="x.csv", row=n, column="BilledCost", reason="bad")
        for n in range(2, 252)
    ]
    await asyncio.wait_for(registry.add_rejections("bill-x", rows), 60)
    await asyncio.wait_for(registry.add_rejections("bill-x", rows), 60)  # a retry: same ids
    stored = await registry.rejections("bill-x")
    assert [r.row for r in stored] == list(range(2, 252))
