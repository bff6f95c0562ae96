"""Regression tests for the review's invoicing defects (issue 13): each failed before its fix.

Figures are computed by hand in the comment above their assertion.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from invoicing_test_support import rated
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Catalog, Customer, InvoicingEntity, TaxRate
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents, InMemoryInvoicePdfStore
from billing_invoicing.adapters.stored_rows import charge_line_of
from billing_invoicing.domain.invoice import (
    ChargeGroup,
    InvoiceDocument,
    InvoiceStatus,
    LineKind,
    assemble_invoice,
)
from billing_invoicing.domain.model import (
    ChargeAmounts,
    CurrencyMismatchError,
    CurrencySum,
    DraftSums,
)
from billing_invoicing.domain.stored import ChargeLine
from billing_invoicing.domain.units import (
    DEFAULT_EXPONENT,
    INT64_MAX,
    UNIT_EXPONENTS,
    AmountNotStorableError,
    from_units,
    to_units,
    unit_exponent,
    units_range_filter,
)
from billing_invoicing.entrypoints.consumers import apply_charge_stream
from billing_invoicing.service.generate_invoices import InvoicingPorts
from billing_invoicing.service.usage_csv import write_usage_csv
from billing_schemas.events import ChargeRated, PeriodClose, PeriodClosing, RatedCharge

D = Decimal
DE_RATES = [
    TaxRate(country="DE", percent=D("19")),
    TaxRate(country="DE", percent=D("16"), effective_from=date(2020, 7, 1)),
    TaxRate(country="DE", percent=D("19"), effective_from=date(2021, 1, 1)),
]


def entity() -> InvoicingEntity:
    return InvoicingEntity.model_validate(
        {
            "id": "seller",
            "name": "Seller GmbH",
            "address": {"lines": ["Strasse 1"], "country": "DE"},
            "vat_id": "DE123456788",
            "number_prefix": "S-",
            "email": "billing@seller.example",
        }
    )


def customer(currency: str = "EUR") -> Customer:
    return Customer.model_validate(
        {
            "id": "buyer",
            "name": "Buyer",
            "address": {"lines": ["Street 1"], "country": "DE"},
            "currency": currency,
            "invoicing_entity": "seller",
            "price_list": "p",
        }
    )


# --- item 6: late lines are taxed by the regime of their own period ------------------------


def test_late_usage_is_taxed_at_the_rate_of_the_period_it_belongs_to() -> None:
    # January 2021 (19 %) with usage of December 2020 (16 %) received late:
    # 100.00 x 19 % = 19.00 and 50.00 x 16 % = 8.00; tax 27.00 (not 28.50 = 150 x 19 %)
    groups = [
        ChargeGroup(provider="AWS", service_name="EC2", charge_count=1, cost=D(0),
                    price=D("100.00"), period="2021-01"),
        ChargeGroup(provider="AWS", service_name="EC2", charge_count=1, cost=D(0),
                    price=D("50.00"), period="2020-12"),
    ]  # fmt: skip
    inv = assemble_invoice(
        customer=customer(), entity=entity(), period="2021-01", groups=groups, tax_rates=DE_RATES
    )

    assert [line.kind for line in inv.lines] == [LineKind.USAGE, LineKind.CORRECTION]
    assert [(t.label, t.base, t.tax) for t in inv.taxes] == [
        ("VAT 19% (DE)", D("100.00"), D("19.00")),
        ("VAT 16% (DE)", D("50.00"), D("8.00")),
    ]
    assert (inv.subtotal, inv.tax, inv.total) == (D("150.00"), D("27.00"), D("177.00"))


# --- item 12: the usage CSV never hands a spreadsheet a formula -----------------------------


async def _docs(*docs: dict[str, Any]) -> AsyncIterator[ChargeLine]:
    for doc in docs:
        yield charge_line_of(doc)


def _charge_doc(**text: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": "c1", "period": "2024-09", "provider": "AWS", "sub_account_id": "111",
        "service_name": "EC2", "sku_id": "SKU", "description": "d", "region": "eu",
        "charge_category": "usage", "line_type": "on_demand", "charge_period_start": None,
        "quantity": "-2", "unit": "h", "cost_units": -1_500_000_000, "cost_currency": "EUR",
        "fx_rate": None, "basis": "cost", "price_units": -2_000_000_000, "currency": "EUR",
        "margin_units": -500_000_000, "savings_removed_units": 0, "rule": "markup (global)",
        "price_list_id": "p", "price_list_version": 1,
    }  # fmt: skip
    return doc | text


async def test_the_usage_csv_neutralizes_cells_a_spreadsheet_would_run() -> None:
    out = io.StringIO()
    hostile = {
        "description": '=HYPERLINK("http://evil.example","click")',
        "sku_id": "@SUM(A1:A9)",
        "region": "+1+cmd|' /C calc'!A0",
        "service_name": "-2+3",
        "sub_account_id": "\t=1",
    }
    await write_usage_csv(_docs(_charge_doc(**hostile)), out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))

    assert row["description"] == "'" + hostile["description"]
    assert row["sku"] == "'@SUM(A1:A9)"
    assert row["region"] == "'" + hostile["region"]
    assert row["service"] == "'-2+3"
    assert row["account"] == "'\t=1"
    # our own numbers stay numbers, negative ones included
    assert (row["quantity"], row["price"], row["cost"]) == ("-2", "-2.000000000", "-1.500000000")
    assert row["provider"] == "AWS"


# --- item 3: amounts any real invoice carries are storable, in every currency --------------


def test_stored_units_hold_a_billion_dollars_worth_in_every_currency() -> None:
    # 20 billion rupiah (about 1.2 million dollars) was 2e19 nanos, beyond int64: IDR's unit is
    # 10^-5 rupiah, so it is 2e15 units; dollars and euros keep nanos (stored data unchanged)
    assert unit_exponent("IDR") == 5
    assert to_units(D("20000000000.50"), "IDR") == 2_000_000_000_050_000
    assert from_units(2_000_000_000_050_000, "IDR") == D("20000000000.50")
    assert to_units(D("130.90"), "EUR") == 130_900_000_000
    assert to_units(D("0.000000000499"), "USD") == 0  # half-even to the unit, as before
    # the capacity of every currency, at the magnitudes of its table, is at least ~0.9e9 USD
    for code, exponent in UNIT_EXPONENTS.items():
        capacity = D(INT64_MAX).scaleb(-exponent)
        magnitude = DEFAULT_EXPONENT - exponent
        assert capacity / D(10) ** (magnitude + 1) >= D("0.9E9"), code
    with pytest.raises(AmountNotStorableError, match=r"amount too large to store: 1E\+20 IDR"):
        to_units(D("1E+20"), "IDR")


def test_the_total_filter_compares_each_currency_in_its_own_units() -> None:
    query = units_range_filter("total_units", D("100"), None)
    assert query is not None
    bounds = {}
    for clause in query["$or"]:
        for code in clause["currency"].get("$in", ["(the others)"]):
            bounds[code] = clause["total_units"]
    assert bounds["(the others)"] == {"$gte": 100_000_000_000}  # EUR, USD...: nanos
    assert bounds["IDR"] == {"$gte": 10_000_000}  # 10^-5 rupiah
    assert bounds["JPY"] == {"$gte": 1_000_000_000}  # 10^-7 yen
    assert units_range_filter("total_units", None, None) is None
    # a bound beyond what any currency stores matches nothing, and is no error
    assert units_range_filter("total_units", D("1E+23"), None) == {"_id": {"$in": []}}


# --- item 11: charges in another currency are grouped apart and refused at the close ---------


def test_a_draft_with_charges_in_another_currency_cannot_be_issued() -> None:
    sums = DraftSums()
    for charge_id, currency, price in (("a", "EUR", "100"), ("b", "USD", "40"), ("c", "USD", "2")):
        sums.add(
            ChargeAmounts(
                charge_id, ("2024-09", "AWS", "EC2", "usage"), currency, D(0), D(price), D(0)
            )
        )
    assert sums.currencies() == {
        "EUR": CurrencySum(1, D("100")),
        "USD": CurrencySum(2, D("42")),
    }
    with pytest.raises(CurrencyMismatchError) as refused:
        sums.check_currency("x:2024-09", "EUR")
    assert str(refused.value).startswith(
        "cannot close x:2024-09 in EUR: 2 charges in USD (price 42.00 USD). The invoice is in "
        "the customer's currency, EUR, and amounts in another currency are never added to it"
    )
    only_eur = DraftSums()
    only_eur.add(ChargeAmounts("a", ("2024-09", "AWS", "EC2", "usage"), "EUR", D(0), D(1), D(0)))
    only_eur.check_currency("x:2024-09", "EUR")  # nothing to refuse


# --- item 3, the consumer rule at the close: one invoice that cannot be stored ---------------


class _Renderer:
    async def render(self, invoice: InvoiceDocument) -> bytes:
        return f"%PDF-stand-in {invoice.number}".encode()


@dataclass(frozen=True)
class _Record:
    """Where a message was read from (what the consumer takes of a Kafka record)."""

    partition: int
    offset: int
    headers: tuple[tuple[str, bytes], ...] = ()


def _customer(customer_id: str, currency: str, country: str) -> dict[str, Any]:
    return {
        "id": customer_id,
        "name": customer_id,
        "address": {"lines": ["Street 1"], "country": country},
        "currency": currency,
        "invoicing_entity": "seller",
        "price_list": "p",
    }


@pytest.mark.integration
async def test_an_invoice_too_large_to_store_is_dead_lettered_and_the_others_are_issued(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    catalog = MongoCatalogRepository(mongo_db)
    await catalog.apply(
        Catalog.model_validate(
            {
                "invoicing_entities": [entity().model_dump(mode="json")],
                "tax_rates": [{"country": "DE", "percent": "19"}],
                "price_lists": [
                    {"id": "p", "versions": [{"version": 1, "effective_from": "2024-01-01"}]}
                ],
                "customers": [_customer("huge", "IDR", "ID"), _customer("fine", "EUR", "DE")],
            }
        )
    )
    invoices = MongoInvoiceRepository(mongo_db)
    await invoices.ensure_indexes()
    ports = InvoicingPorts(
        catalog, invoices, _Renderer(), InMemoryInvoicePdfStore(), InMemoryInvoiceEvents()
    )

    def idr(charge_id: str, price: str) -> RatedCharge:
        return rated(charge_id, "huge", price=price, cost=price).model_copy(
            update={"currency": "IDR", "cost_currency": "IDR"}
        )

    def closing(customer_id: str) -> PeriodClosing:
        close = PeriodClose(customer_id=customer_id, period="2024-09", issue_date=date(2024, 10, 1))
        return PeriodClosing.create(close, source="test", correlation_id="t")

    # each charge fits IDR's units (capacity 9.2e13 IDR), their sum (1e14 IDR) does not
    events: list[tuple[Any, ChargeRated | PeriodClosing]] = [
        (_Record(0, 0), ChargeRated.create(idr("h1", "5E+13"), source="t", correlation_id="t")),
        (_Record(0, 1), ChargeRated.create(idr("h2", "5E+13"), source="t", correlation_id="t")),
        (_Record(0, 2), ChargeRated.create(rated("f1", "fine"), source="t", correlation_id="t")),
        (_Record(0, 3), closing("huge")),
        (_Record(0, 4), closing("fine")),
    ]
    failed, done = await apply_charge_stream(ports, events)

    assert [(f.record, f.error.split(":")[0]) for f in failed] == [
        (_Record(0, 3), "AmountNotStorableError")
    ]
    assert "amount too large to store: 100000000000000.00 IDR" in failed[0].error
    assert [(o.invoice_id, o.action) for o in done] == [("fine:2024-09", "finalized")]
    huge = await invoices.get("huge:2024-09")
    assert huge is not None
    assert huge.status is InvoiceStatus.FINALIZING  # resumed when its marker is replayed
