"""CloudKitty's API output (GET /v2/dataframes, GET /v2/summary) as CloudKitty returns it.

The fixtures follow CloudKitty's v2 API reference (its ``dataframes_get.json`` and summary
samples), with our own values. By hand:

cloudkitty_dataframes.json (5 entries in document order):
  p-alpha: instance 0.05 + volume.size 3.8 + instance 0.05 = 3.90
  p-beta: instance 0.2; its second-hour entry (row 5) has qty -1: rejected. Total 4.10.
cloudkitty_summary.json (grouped by type and project_id; ``rate`` is the sum of the prices):
  p-alpha: 36.0 + 2736.0 = 2772.0; p-beta: 144.0. Total 2916.0.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.asynchronous.database import AsyncDatabase
from typer.testing import CliRunner

from billing_catalog.store import ACCOUNTS, CUSTOMERS
from billing_cli.main import app
from billing_ingest.adapters.catalog_currency import MongoCatalogCurrencies
from billing_ingest.adapters.memory import (
    InMemoryBillRegistry,
    InMemoryCatalogCurrencies,
    InMemoryUsagePublisher,
)
from billing_ingest.service.load_bill import LoadResult, NotABillError, load_bill
from billing_schemas.events import UsageRecord

FIXTURES = Path(__file__).parent / "fixtures"
D = Decimal


async def _load(
    path: Path, **options: Any
) -> tuple[LoadResult, list[UsageRecord], InMemoryUsagePublisher]:
    publisher = InMemoryUsagePublisher()
    result = await load_bill(path, publisher=publisher, registry=InMemoryBillRegistry(), **options)
    return result, [e.data for _, e in publisher.usage_events], publisher


def _totals(records: list[UsageRecord]) -> dict[tuple[str, str], Decimal]:
    totals: dict[tuple[str, str], Decimal] = {}
    for r in records:
        totals[r.sub_account_id, r.currency] = totals.get((r.sub_account_id, r.currency), D(0)) + (
            r.billed_cost
        )
    return totals


async def test_dataframes_are_read_entry_by_entry_in_the_currency_given() -> None:
    result, records, publisher = await _load(
        FIXTURES / "cloudkitty_dataframes.json", currency="eur"
    )
    summary = result.summary
    assert summary.format == "openstack"
    assert (summary.rows_read, summary.rows_accepted, summary.rows_rejected) == (5, 4, 1)
    assert _totals(records) == {("p-alpha", "EUR"): D("3.90"), ("p-beta", "EUR"): D("0.2")}
    assert summary.billed_cost_totals == {"EUR": D("4.10")}
    vm, _, volume, _ = records
    assert (vm.service_name, vm.sku_id, vm.resource_id, vm.pricing_unit) == (
        "instance",
        "m1.small",
        "vm-1",
        "instance",
    )
    assert vm.charge_period_start.isoformat() == "2024-09-01T00:00:00+00:00"
    assert (volume.service_name, volume.pricing_quantity, volume.billed_cost) == (
        "volume.size",
        D("1.9"),
        D("3.8"),
    )
    [(_, rejected)] = publisher.rejected_events
    assert (rejected.data.row, rejected.data.column) == (5, "vol.qty")


async def test_a_summary_is_read_with_its_rate_as_the_price() -> None:
    result, records, _ = await _load(FIXTURES / "cloudkitty_summary.json", currency="CHF")
    assert (result.summary.rows_accepted, result.summary.rows_rejected) == (3, 0)
    assert _totals(records) == {("p-alpha", "CHF"): D("2772.0"), ("p-beta", "CHF"): D("144.0")}
    assert [(r.service_name, r.pricing_quantity) for r in records] == [
        ("instance", D(720)),
        ("volume.size", D("1368.0")),
        ("instance", D(720)),
    ]
    assert {r.billing_period for r in records} == {"2024-09"}


async def test_pages_one_after_the_other_are_one_bill(tmp_path: Path) -> None:
    page = (FIXTURES / "cloudkitty_summary.json").read_text()
    other = page.replace("p-beta", "p-gamma")
    path = tmp_path / "summary-pages.json"
    path.write_text(page + "\n" + other)
    result, records, _ = await _load(path, currency="CHF")
    assert result.summary.rows_accepted == 6
    assert _totals(records)[("p-gamma", "CHF")] == D("144.0")


async def test_without_a_currency_the_catalogs_single_one_is_taken() -> None:
    catalog = InMemoryCatalogCurrencies({"OpenStack": {"EUR"}, "AWS": {"USD"}})
    result, records, _ = await _load(FIXTURES / "cloudkitty_dataframes.json", catalog=catalog)
    assert {r.currency for r in records} == {"EUR"}
    assert result.summary.billed_cost_totals == {"EUR": D("4.10")}
    # --currency wins over the catalog
    _, records, _ = await _load(
        FIXTURES / "cloudkitty_summary.json", catalog=catalog, currency="SEK"
    )
    assert {r.currency for r in records} == {"SEK"}


@pytest.mark.parametrize(
    ("catalog", "currency", "reason"),
    [
        ({}, None, "no customer of the catalog has an OpenStack account: give it with --currency"),
        (
            {"OpenStack": {"EUR", "USD"}},
            None,
            "the catalog's OpenStack customers are invoiced in EUR, USD: give it with --currency",
        ),
        ({}, "EURO", "--currency 'EURO' is not an ISO 4217 currency code"),
    ],
)
async def test_no_currency_to_be_had_refuses_the_file(
    catalog: dict[str, set[str]], currency: str | None, reason: str
) -> None:
    publisher, registry = InMemoryUsagePublisher(), InMemoryBillRegistry()
    with pytest.raises(NotABillError) as refused:
        await load_bill(
            FIXTURES / "cloudkitty_dataframes.json",
            publisher=publisher,
            registry=registry,
            catalog=InMemoryCatalogCurrencies(catalog),
            currency=currency,
        )
    assert str(refused.value).startswith("cloudkitty_dataframes.json: ")
    assert reason in str(refused.value)
    assert registry.begun == []


async def test_an_empty_page_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty-page.json"
    path.write_text('{"total": 0, "dataframes": []}')
    with pytest.raises(NotABillError, match="has a header but no rows"):
        await _load(path, currency="EUR")


async def test_the_flat_csv_keeps_its_own_currency_column() -> None:
    result, records, _ = await _load(FIXTURES / "openstack_cloudkitty.csv", currency="USD")
    assert {r.currency for r in records} == {"EUR", "CHF"}
    assert result.summary.billed_cost_totals == {"EUR": D("0.512125"), "CHF": D("0.105")}


@pytest.mark.integration
async def test_the_catalogs_currencies_come_from_the_customers_of_the_providers_accounts(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    """The documents as invoicing's catalog stores them (``catalog apply``)."""
    await mongo_db[CUSTOMERS].insert_many(
        [
            {"_id": "alpha", "currency": "EUR"},
            {"_id": "beta", "currency": "EUR"},
            {"_id": "gamma", "currency": "USD"},
        ]
    )
    await mongo_db[ACCOUNTS].insert_many(
        [
            {"_id": "OpenStack:p-alpha", "customer_id": "alpha", "provider": "OpenStack"},
            {"_id": "OpenStack:p-beta", "customer_id": "beta", "provider": "OpenStack"},
            {"_id": "AWS:111", "customer_id": "gamma", "provider": "AWS"},
        ]
    )
    catalog = MongoCatalogCurrencies(mongo_db)
    assert await catalog.invoicing_currencies("OpenStack") == {"EUR"}
    assert await catalog.invoicing_currencies("AWS") == {"USD"}
    assert await catalog.invoicing_currencies("Oracle") == set()


@pytest.fixture
def ingest_env(infra: Any, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``billing ingest`` pointed at this test's topics and database."""
    monkeypatch.setenv("BILLING_INGEST_KAFKA_BOOTSTRAP_SERVERS", infra.kafka_bootstrap_servers)
    monkeypatch.setenv("BILLING_INGEST_MONGODB_URL", infra.mongodb_url)
    monkeypatch.setenv("BILLING_INGEST_MONGODB_DATABASE", namespace)
    monkeypatch.setenv("BILLING_INGEST_TOPIC_NAMESPACE", f"{namespace}.")
    yield namespace
    client: MongoClient[dict[str, Any]] = MongoClient(infra.mongodb_url)
    with client:
        client.drop_database(namespace)


@pytest.mark.integration
def test_billing_ingest_takes_the_currency_from_its_flag_or_the_catalog(ingest_env: str) -> None:
    runner = CliRunner()
    summary = str(FIXTURES / "cloudkitty_summary.json")
    refused = runner.invoke(app, ["ingest", summary, "--json"])
    assert refused.exit_code == 2
    assert "give it with --currency CODE" in refused.output
    loaded = runner.invoke(app, ["ingest", summary, "--currency", "CHF", "--json"])
    assert loaded.exit_code == 0, loaded.output
    assert json.loads(loaded.output)["billed_cost_totals"] == {"CHF": "2916.0"}
    infra_url = os.environ["BILLING_INGEST_MONGODB_URL"]
    client: MongoClient[dict[str, Any]] = MongoClient(infra_url)
    with client:
        client[ingest_env][CUSTOMERS].insert_one({"_id": "alpha", "currency": "EUR"})
        client[ingest_env][ACCOUNTS].insert_one(
            {"_id": "OpenStack:p-alpha", "customer_id": "alpha", "provider": "OpenStack"}
        )
    frames = str(FIXTURES / "cloudkitty_dataframes.json")
    from_catalog = runner.invoke(app, ["ingest", frames, "--json"])
    assert from_catalog.exit_code == 0, from_catalog.output
    assert json.loads(from_catalog.output)["billed_cost_totals"] == {"EUR": "4.10"}
