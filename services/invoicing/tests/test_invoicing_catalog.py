"""The catalog file's additions for invoicing (tax rates, plans, subscriptions): validation
errors name the entry and the field; the JSON Schema in docs/ is the model's."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Catalog
from billing_catalog.store import CATALOG_REVISION, REVISION_ID
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.entrypoints.cli import load_catalog_file

ROOT = Path(__file__).resolve().parents[3]

HEAD = """
invoicing_entities:
  - id: cumulus
    name: Cumulus
    address: {lines: ["Street 1"], country: DE}
    number_prefix: C-
    email: billing@cumulus.example
price_lists:
  - {id: standard, versions: [{version: 1, effective_from: 2024-01-01, rules: []}]}
plans:
  - {id: business, name: Business, currency: EUR, fee: "500.00", included_infrastructure: "400"}
"""


def customer(extra: str, currency: str = "EUR") -> str:
    return f"""
customers:
  - id: alpha
    name: Alpha
    address: {{lines: ["Weg 1"], country: DE}}
    currency: {currency}
    invoicing_entity: cumulus
    price_list: standard
{extra}
"""


def load(tmp_path: Path, text: str) -> Catalog:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return load_catalog_file(path)


def test_the_json_schema_in_docs_is_the_models() -> None:
    written = json.loads((ROOT / "docs" / "catalog.schema.json").read_text())
    assert written == Catalog.model_json_schema(), (
        "docs/catalog.schema.json is stale: regenerate it from billing_catalog.models.Catalog "
        "(docs/catalog.md)"
    )


def test_demo_catalog_has_the_sellers_vat_rate() -> None:
    catalog = load_catalog_file(ROOT / "demo" / "catalog.yaml")
    assert {r.country for r in catalog.tax_rates} >= {"DE"}


def test_a_valid_subscription_loads(tmp_path: Path) -> None:
    catalog = load(
        tmp_path,
        HEAD
        + customer(
            "    subscriptions: [{plan: business, quantity: 2, start: 2024-01-01}]\n"
            "    included_infrastructure: {underuse: credit}"
        ),
    )
    [alpha] = catalog.customers
    assert alpha.subscriptions[0].quantity == 2
    assert alpha.included_infrastructure.underuse == "credit"
    assert alpha.included_infrastructure.overuse == "bill"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            HEAD
            + customer("    subscriptions: [{plan: business, quantity: 0, start: 2024-01-01}]"),
            "customers[alpha].subscriptions[0].quantity: Input should be greater than or equal "
            "to 1",
        ),
        (
            HEAD
            + "tax_rates:\n  - {country: DE, percent: '19'}\n  - {country: FR, percent: 19.5}\n",
            "tax_rates[1].percent: Value error, amount 19.5 is a float: send money as a decimal "
            "string",
        ),
        (
            HEAD + customer("    subscriptions: [{plan: gold, start: 2024-01-01}]"),
            "customer 'alpha': subscriptions[0]: plan 'gold' is not defined in plans",
        ),
        (
            HEAD + customer("    subscriptions: [{plan: business, start: 2024-01-01}]", "USD"),
            "customer 'alpha': subscriptions[0]: plan 'business' is in EUR but the customer is "
            "invoiced in USD",
        ),
        (
            HEAD + customer("    included_infrastructure: {underuse: refund}"),
            "customers[alpha].included_infrastructure.underuse: Input should be 'no_discount' or "
            "'credit'",
        ),
        (
            HEAD
            + "tax_rates:\n  - {country: DE, percent: '19'}\n  - {country: DE, percent: '7'}\n",
            "tax_rates: two rates of one country share an effective_from date",
        ),
        (
            HEAD
            + customer(
                "    subscriptions:\n"
                "      - plan: business\n"
                "        start: 2024-09-10\n"
                "        quantity_changes: [{effective_from: 2024-09-01, quantity: 5}]"
            ),
            "customers[alpha].subscriptions[0]: Value error, quantity_changes[0]: effective_from "
            "2024-09-01 is not after start 2024-09-10",
        ),
        (
            HEAD.replace('included_infrastructure: "400"}', "proration: monthly}")
            + customer("    subscriptions: [{plan: business, start: 2024-01-01}]"),
            "plans[business].proration: Input should be 'daily' or 'none'",
        ),
    ],
)
def test_errors_name_the_entry_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match="the catalog is not valid") as caught:
        load(tmp_path, text)
    assert message in str(caught.value)


@pytest.mark.integration
async def test_a_catalog_of_many_customers_applies_again_and_changes_what_changed(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    """FerretDB v1.24 never answers a bulk write that changes about a hundred stored documents:
    re-applying a catalog of 150 customers must neither hang nor rewrite what is unchanged."""
    base = yaml.safe_load(HEAD)
    customers = [
        {
            "id": f"c{n:03d}",
            "name": f"Customer {n}",
            "address": {"lines": ["Weg 1"], "country": "DE"},
            "currency": "EUR",
            "invoicing_entity": "cumulus",
            "price_list": "standard",
            "accounts": [{"provider": "AWS", "account_id": f"{n:012d}"}],
        }
        for n in range(150)
    ]
    repo = MongoCatalogRepository(mongo_db)

    async def revision() -> str:
        doc = await mongo_db[CATALOG_REVISION].find_one({"_id": REVISION_ID})
        assert doc is not None
        return str(doc["revision"])

    await asyncio.wait_for(repo.apply(Catalog.model_validate(base | {"customers": customers})), 60)
    first = await revision()
    renamed = [c | {"name": f"{c['name']} GmbH"} for c in customers]
    changed = Catalog.model_validate(base | {"customers": renamed})
    await asyncio.wait_for(repo.apply(changed), 60)
    second = await revision()
    await asyncio.wait_for(repo.apply(changed), 60)  # the same file again: nothing to write
    # the revision readers watch moves on with each apply that writes, not otherwise
    assert first != second == await revision()
    stored = await repo.customer("c149")
    assert stored is not None
    assert stored.name == "Customer 149 GmbH"
    assert await mongo_db["catalog_accounts"].count_documents({}) == 150
