"""The list routes (``GET /v1/invoices`` with every filter, an invoice by number, its dues) read
a bounded number of documents, each by ``_id``, whatever the number of invoices stored.

The test stores invoices the way the close leaves them (and one the way the repository
creates drafts), lets the repository index those stored before (``ensure_indexes``, as at
start-up after an upgrade), then records every command the API sends while it answers the
portal's pages, and asks the database (``explain``) about each filter on the collections that
grow with the invoices. FerretDB's SQLite backend pushes down only ``_id`` equality: any other
filter, a sort or a skip would read every invoice ever stored (docs/operations.md, "The
database backend"). The answers are checked against the same filters applied in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from billing_catalog.models import Catalog
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.contacts_repo import MongoContactBook
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.invoice_keys import INVOICE_KEYS
from billing_invoicing.adapters.invoice_repo import INVOICES, MongoInvoiceRepository
from billing_invoicing.adapters.invoice_rows import INVOICE_ROWS
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.domain.access import parse_tokens
from billing_invoicing.domain.listing import (
    bucket_bounds,
    buckets_to_read,
    ids_in_list_order,
    in_list_order,
    total_buckets,
)
from billing_invoicing.entrypoints.http import invoicing_api
from billing_invoicing.service.generate_invoices import InvoicingPorts
from billing_invoicing.service.invoice_queries import QueryPorts
from billing_invoicing.service.settle_invoices import SettlementPorts
from billing_runtime.mongo import CommandRecorder, assert_pushed_down, explain_query

OPERATOR = "operator-token-0123456789abcdef"
BIG = "big-customer-token-0123456789abc"
UNIT = 10**9  # the stored unit of EUR amounts (docs/money.md)
CUSTOMERS = ["big", "c01", "c02", "c03"]
PAGE = 5
BOUNDED = 2 * PAGE + 12
"""Commands one page may send: its invoices (twice a page when a filter is checked on them),
the keys, the ledgers of drafts."""


def issued(n: int, customer: str, month: int) -> dict[str, Any]:
    """An invoice as the close leaves it (finalized, numbered; every third one paid, every
    fourth one credited)."""
    period = f"{2000 + month // 12:04d}-{month % 12 + 1:02d}"
    total = 1000 + n * 737 % 20_000  # cents
    return {
        "_id": f"{customer}:{period}",
        "number": f"T-{n:05d}",
        "customer_id": customer,
        "period": period,
        "status": "paid" if n % 3 == 0 else "finalized",
        "currency": "EUR",
        "total_units": total * UNIT // 100,
        "outstanding_units": 0 if n % 3 == 0 else total * UNIT // 100,
        "credited_units": UNIT if n % 4 == 0 else 0,
        "issue_date": f"{period}-01",
        "due_date": f"{period}-28",
        "published_at": datetime(2024, 1, 1, tzinfo=UTC),
        "document": issued_document(customer, period, f"T-{n:05d}", Decimal(total) / 100),
    }


def issued_document(customer: str, period: str, number: str, total: Decimal) -> dict[str, Any]:
    """An issued document of no lines (what the dues read)."""
    party = {"name": customer, "address_lines": ["Weg 1"], "country": "DE"}
    return {
        "invoice_id": f"{customer}:{period}",
        "customer_id": customer,
        "invoicing_entity_id": "e",
        "period": period,
        "currency": "EUR",
        "language": "en",
        "seller": party | {"name": "Seller"},
        "buyer": party,
        "lines": [],
        "subtotal": str(total),
        "tax": "0",
        "total": str(total),
        "outstanding": str(total),
        "payment_methods": [],
        "number": number,
        "status": "finalized",
        "issue_date": f"{period}-01",
        "due_date": f"{period}-28",
    }


def catalog() -> Catalog:
    return Catalog.model_validate(
        {
            "invoicing_entities": [
                {
                    "id": "e",
                    "name": "Seller",
                    "address": {"lines": ["Weg 1"], "country": "DE"},
                    "number_prefix": "T-",
                    "email": "billing@seller.example",
                }
            ],
            "tax_rates": [{"country": "DE", "percent": "19"}],
            "price_lists": [
                {"id": "p", "versions": [{"version": 1, "effective_from": "2024-01-01"}]}
            ],
            "customers": [
                {
                    "id": c,
                    "name": c,
                    "address": {"lines": ["Weg 1"], "country": "DE"},
                    "currency": "EUR",
                    "invoicing_entity": "e",
                    "price_list": "p",
                }
                for c in CUSTOMERS
            ],
        }
    )


def reads(commands: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, Any]]:
    """(command, collection, filter) of every read on the collections that grow with the
    invoices; a sort or skip counts as a filter the database cannot answer."""
    found = []
    for name, body in commands:
        collection = body.get(name)
        if collection not in (INVOICES, INVOICE_KEYS, INVOICE_ROWS):
            continue
        assert name in ("find", "insert", "update"), (name, body)
        if name == "find":
            assert not body.get("sort"), body
            assert not body.get("skip"), body
            found.append((name, collection, body.get("filter", {})))
    return found


def expected(docs: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> list[str]:
    """Numbers (or ids) of the invoices ``keep`` keeps, newest period first, then by customer
    and id: the list's order."""
    kept = sorted((d for d in docs if keep(d)), key=lambda d: (d["customer_id"], d["_id"]))
    kept.sort(key=lambda d: d["period"], reverse=True)
    return [d.get("number") or d["_id"] for d in kept]


def total(doc: dict[str, Any]) -> Decimal:
    return Decimal(doc["total_units"]) / UNIT


@pytest.mark.integration
async def test_the_list_routes_read_by_id_only_and_a_bounded_number_of_documents(
    infra: Any, namespace: str
) -> None:
    recorder = CommandRecorder()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, event_listeners=[recorder], tz_aware=True
    )
    db = client[namespace]
    try:
        docs = [issued(n, "big", n) for n in range(60)]
        docs += [issued(100 + n, CUSTOMERS[1 + n % 3], n // 3) for n in range(60)]
        await db[INVOICES].insert_many(docs)
        cat = MongoCatalogRepository(db)
        await cat.apply(catalog())
        invoices = MongoInvoiceRepository(db)
        await invoices.ensure_indexes()  # indexes the invoices stored before the keys
        await invoices.create_drafts(["big:2099-01"])  # a draft, indexed as it is created
        drafts = await db[INVOICES].find({"_id": "big:2099-01"}).to_list()
        every = docs + drafts
        settlements = MongoSettlementRepository(db)
        events = InMemoryInvoiceEvents()
        pdfs = InvoicePdfStore(db)
        settlement = SettlementPorts(cat, invoices, settlements, events)
        app = invoicing_api(
            tokens=parse_tokens({OPERATOR: "operator", BIG: "customer:big"}),
            queries=QueryPorts(invoices, settlement, pdfs),
            invoicing=InvoicingPorts(cat, invoices, None, pdfs, events),  # type: ignore[arg-type]
            contacts=MongoContactBook(db),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:

            async def page(query: str, token: str = OPERATOR, *, bounded: bool = True) -> list[str]:
                recorder.commands.clear()
                answer = await api.get(
                    f"/v1/invoices?limit={PAGE}&{query}",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert answer.status_code == 200, answer.text
                if bounded:
                    assert len(recorder.commands) <= BOUNDED, (query, len(recorder.commands))
                for name, collection, where in reads(recorder.commands):
                    assert set(where) == {"_id"}, (query, where)
                    assert isinstance(where["_id"], str), (query, where)
                    plan = await explain_query(db[collection], where)
                    assert_pushed_down(plan, f"{name} on {collection} {where}")
                return [i["number"] or i["invoice_id"] for i in answer.json()["items"]]

            def cut(found: list[str], offset: int) -> list[str]:
                return found[offset : offset + PAGE]

            big = expected(every, lambda d: d["customer_id"] == "big")
            assert await page("", BIG) == cut(big, 0)
            assert await page("offset=35", BIG) == cut(big, 35)
            assert await page("customer=big&offset=58") == cut(big, 58)
            everyone = expected(every, lambda _: True)
            # without a filter the keys come a period at a time: the first page reads the
            # newest periods' keys (a deep page reads one keys document per period it passes)
            assert await page("") == cut(everyone, 0)
            period = expected(every, lambda d: d["period"] == "2000-03")
            assert await page("period=2000-03") == cut(period, 0)
            paid = expected(every, lambda d: d["status"] == "paid")
            # a status is not in the keys: invoices are read (by id) until the page is full
            assert await page("status=paid&offset=3", bounded=False) == cut(paid, 3)
            low, high = Decimal("40"), Decimal("90.5")
            ranged = expected(
                every, lambda d: d.get("total_units") is not None and low <= total(d) <= high
            )
            assert len(ranged) > PAGE
            assert await page("min_total=40&max_total=90.5&offset=2") == cut(ranged, 2)
            adjusted = expected(every, lambda d: d["customer_id"] == "c02" and d["credited_units"])
            assert await page("customer=c02&adjusted=true") == cut(adjusted, 0)

            for path in ("/v1/invoices/T-00042", "/v1/invoices/T-00042/dues"):
                recorder.commands.clear()
                answer = await api.get(path, headers={"Authorization": f"Bearer {BIG}"})
                assert answer.status_code == 200, (path, answer.text)
                for name, collection, where in reads(recorder.commands):
                    assert set(where) == {"_id"}, (path, where)
                    plan = await explain_query(db[collection], where)
                    assert_pushed_down(plan, f"{name} on {collection} {where}")
            assert answer.json()["number"] == "T-00042"
            unknown = await api.get(
                "/v1/invoices/T-99999", headers={"Authorization": f"Bearer {BIG}"}
            )
            assert unknown.status_code == 404
    finally:
        await client.drop_database(namespace)
        await client.close()


@given(
    st.decimals(min_value=Decimal("-1E12"), max_value=Decimal("1E12"), places=2),
    st.decimals(min_value=Decimal(0), max_value=Decimal("1E6"), places=2),
    st.decimals(min_value=Decimal(0), max_value=Decimal("1E6"), places=2),
)
def test_a_total_is_in_a_bucket_that_every_range_holding_it_reads(
    amount: Decimal, below: Decimal, above: Decimal
) -> None:
    buckets = total_buckets(amount)
    for bucket in buckets:
        lowest, highest = bucket_bounds(bucket)
        assert lowest <= amount <= highest
    ranges: list[tuple[Decimal | None, Decimal | None]] = [
        (amount - below, amount + above), (None, amount), (amount, None),
    ]  # fmt: skip
    for low, high in ranges:
        read = buckets_to_read(buckets, low, high)
        assert read, (amount, low, high)
    # a range that ends below the total reads none of its buckets
    assert not buckets_to_read(buckets, None, amount - 1 - above - abs(amount) / 5)


def test_a_range_reads_coarse_buckets_inside_it_and_fine_ones_at_its_edges() -> None:
    every = sorted({b for n in range(100_000) for b in total_buckets(Decimal(n) / 100)})
    assert buckets_to_read(every, Decimal(100), Decimal(120)) == ["+3:10", "+3:11", "+3:12"]
    assert buckets_to_read(every, Decimal(40), Decimal("90.5")) == [
        "+2:4", "+2:5", "+2:6", "+2:7", "+2:8", "+2:90",
    ]  # fmt: skip
    assert len(buckets_to_read(every, Decimal("0.5"), None)) <= 9 + 9 + 9 + 1


@given(
    st.lists(
        st.tuples(
            st.text(alphabet="ab:-_1", min_size=1, max_size=4),
            st.integers(min_value=1990, max_value=2200),
            st.integers(min_value=1, max_value=12),
        ),
        max_size=30,
    )
)
def test_ids_sort_into_the_list_order(invoices: list[tuple[str, int, int]]) -> None:
    ids = [f"{customer}:{year:04d}-{month:02d}" for customer, year, month in invoices]
    keys = [(i.rsplit(":", 1)[1], i.rsplit(":", 1)[0], i) for i in ids]
    assert ids_in_list_order(ids + ids[:3]) == in_list_order(keys)
