"""Portal latency: a customer's invoice list and invoice page with many invoices, an operator's
filter over all of them (p50/p95), through the real portal and invoicing apps (in process,
over ASGI) on the local FerretDB. ``make bench-portal``; results in bench/results/portal.jsonl.

The invoices are written straight into a scratch database in the shape the close leaves them
(finalized, numbered, no PDF; one per customer and period), then the repository indexes them
(``ensure_indexes``: the list's keys, as after an upgrade; ``index_seconds``): what is
measured is reading them, not issuing them.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import statistics
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from argon2 import PasswordHasher
from bench_results import database_backend, record_result

from billing_catalog.models import Catalog
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.contacts_repo import MongoContactBook
from billing_invoicing.adapters.customer_accounts_repo import MongoCustomerAccountBook
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.invoice_repo import INVOICES, MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.domain.access import parse_tokens
from billing_invoicing.entrypoints.http import invoicing_api
from billing_invoicing.service.customer_accounts import CustomerAccounts
from billing_invoicing.service.generate_invoices import InvoicingPorts
from billing_invoicing.service.invoice_queries import QueryPorts
from billing_invoicing.service.settle_invoices import SettlementPorts
from billing_portal.adapters.billing_api import HttpBillingApi
from billing_portal.adapters.memory import InMemoryFailureCounter, InMemoryUserStore
from billing_portal.adapters.passwords import Argon2Passwords
from billing_portal.domain.users import Role
from billing_portal.entrypoints.web import portal_app
from billing_portal.service.accounts import AccountPorts, add_user, set_password
from billing_runtime.mongo import make_mongo_client

KEY = b"bench-portal-signing-key-0123456789abcdef"
PASSWORD = "bench passphrase long"
UNIT = 10**9  # the stored unit of EUR amounts (docs/money.md)


def invoice_doc(n: int, customer: str, j: int) -> dict[str, Any]:
    """The customer's ``j``-th invoice (one per period, as the close issues them), number n."""
    period = f"{2000 + j // 12:04d}-{j % 12 + 1:02d}"
    total = Decimal(1000 + n % 50_000) / 100
    party = {"name": f"{customer} GmbH", "address_lines": ["Weg 1"], "country": "DE"}
    number = f"BEN-{n:07d}"
    return {
        "_id": f"{customer}:{period}",
        "number": number,
        "customer_id": customer,
        "period": period,
        "status": "paid" if n % 3 == 0 else "finalized",
        "currency": "EUR",
        "total_units": int(total * UNIT),
        "outstanding_units": 0 if n % 3 == 0 else int(total * UNIT),
        "issue_date": f"{period}-01",
        "due_date": f"{period}-28",
        "entity_id": "cumulus",
        "published_at": datetime(2024, 1, 1, tzinfo=UTC),
        # an issued document of a usual size (ten lines), as the dues and the page read it
        "document": {
            "invoice_id": f"{customer}:{period}",
            "customer_id": customer,
            "invoicing_entity_id": "cumulus",
            "period": period,
            "currency": "EUR",
            "language": "en",
            "seller": party | {"name": "Cumulus Cloud Resellers GmbH"},
            "buyer": party,
            "subtotal": str((total / Decimal("1.19")).quantize(Decimal("0.01"))),
            "tax": str(total - (total / Decimal("1.19")).quantize(Decimal("0.01"))),
            "taxes": [],
            "total": str(total),
            "outstanding": "0" if n % 3 == 0 else str(total),
            "payment_methods": [{"kind": "Bank transfer", "details": "IBAN DE89 3704"}],
            "number": number,
            "status": "finalized",
            "issue_date": f"{period}-01",
            "due_date": f"{period}-28",
            "lines": [
                {
                    "description": f"Service {i}",
                    "provider": "AWS",
                    "service_name": f"S{i}",
                    "charge_count": 10,
                    "cost": "1.00",
                    "amount_exact": "1.25",
                    "amount": "1.25",
                    "kind": "usage",
                }
                for i in range(10)
            ],
        },
    }


def catalog_of(customers: list[str]) -> Catalog:
    """The seller and the customers the invoices belong to (the dues name both)."""
    return Catalog.model_validate(
        {
            "invoicing_entities": [
                {
                    "id": "cumulus",
                    "name": "Cumulus Cloud Resellers GmbH",
                    "address": {"lines": ["Wolkenstrasse 7"], "country": "DE"},
                    "number_prefix": "BEN-",
                    "email": "billing@cumulus.example",
                    "payment_methods": [{"kind": "Bank transfer", "details": "IBAN DE89 3704"}],
                }
            ],
            "tax_rates": [{"country": "DE", "percent": "19"}],
            "price_lists": [
                {"id": "p", "versions": [{"version": 1, "effective_from": "2024-01-01"}]}
            ],
            "customers": [
                {
                    "id": cid,
                    "name": f"{cid} GmbH",
                    "address": {"lines": ["Weg 1"], "country": "DE"},
                    "currency": "EUR",
                    "invoicing_entity": "cumulus",
                    "price_list": "p",
                    "contacts": [{"email": f"ap@{cid}.example", "roles": ["Billing"]}],
                }
                for cid in customers
            ],
        }
    )


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[math.ceil(len(ordered) * 0.95) - 1] * 1000, 1),  # nearest rank
        "runs": len(ordered),
    }


async def timed(client: httpx.AsyncClient, path: str, runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        answer = await client.get(path)
        samples.append(time.perf_counter() - start)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[-1500:])
    return percentiles(samples)


async def main(customer_invoices: int, all_invoices: int, runs: int, url: str) -> None:
    mongo = make_mongo_client(url)
    name = f"bench_portal_{uuid.uuid4().hex[:8]}"
    db = mongo[name]
    try:
        started = time.perf_counter()
        docs = [invoice_doc(n, "big", n) for n in range(customer_invoices)]
        docs += [
            invoice_doc(n, f"c{n % 500:03d}", (n - customer_invoices) // 500)
            for n in range(customer_invoices, all_invoices)
        ]
        for i in range(0, len(docs), 5000):
            await db[INVOICES].insert_many(docs[i : i + 5000])
        seeded = time.perf_counter() - started
        invoices = MongoInvoiceRepository(db)
        started = time.perf_counter()
        await invoices.ensure_indexes()  # the list's keys of what was stored before them
        indexed = time.perf_counter() - started
        catalog = MongoCatalogRepository(db)
        await catalog.apply(catalog_of(["big", *(f"c{n:03d}" for n in range(500))]))
        settlements = MongoSettlementRepository(db)
        events = InMemoryInvoiceEvents()
        pdfs = InvoicePdfStore(db)
        settlement = SettlementPorts(catalog, invoices, settlements, events)
        api_app = invoicing_api(
            tokens=parse_tokens({}),
            queries=QueryPorts(invoices, settlement, pdfs),
            invoicing=InvoicingPorts(catalog, invoices, None, pdfs, events),  # type: ignore[arg-type]
            contacts=MongoContactBook(db),
            signing_key=KEY,
            accounts=CustomerAccounts(MongoCustomerAccountBook(db), settlement),
        )
        fast = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        ports = AccountPorts(InMemoryUserStore(), InMemoryFailureCounter(), Argon2Passwords(fast))
        now = datetime.now(UTC)
        for email, role, customer in (
            ("me@big.example", Role.CUSTOMER, "big"),
            ("op@example.com", Role.OPERATOR, None),
        ):
            _, token = await add_user(ports, email, role, customer, now=now)
            await set_password(ports, token, PASSWORD, now)
        inner = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api_app), base_url="http://invoicing"
        )
        api = HttpBillingApi(
            inner, invoicing_url="http://invoicing", ingest_url="http://x", key=KEY
        )
        app = portal_app(accounts=ports, api=api, session_key=KEY.decode(), secure_cookies=False)
        figures: dict[str, Any] = {}
        for who, pages in (
            ("me@big.example", {
                "customer_list_first_page": "/invoices",
                "customer_list_page_100": "/invoices?page=100",
                "customer_invoice_page": "/invoices/BEN-0000042/pay",
            }),
            ("op@example.com", {
                "operator_filter_total_range": "/console/invoices?min_total=100&max_total=120",
                "operator_filter_customer": "/console/invoices?customer=c123",
                "operator_invoice_page": f"/console/invoices/BEN-{all_invoices - 7:07d}",
            }),
        ):  # fmt: skip
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://portal") as client:
                login = await client.get("/login")
                found = re.search(r'name="csrf" value="([^"]+)"', login.text)
                assert found
                await client.post(
                    "/login", data={"csrf": found.group(1), "email": who, "password": PASSWORD}
                )
                for label, path in pages.items():
                    figures[label] = await timed(client, path, runs)
                    print(label, figures[label])
        await inner.aclose()
        record_result(
            "portal",
            {
                "customer_invoices": customer_invoices,
                "all_invoices": all_invoices,
                "seed_seconds": round(seeded, 1),
                "index_seconds": round(indexed, 1),
                "backend": await database_backend(url),
                "target_p95_ms": 150,
                "pages": figures,
            },
        )
    finally:
        await mongo.drop_database(name)
        await mongo.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customer-invoices", type=int, default=10_000)
    parser.add_argument("--all-invoices", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mongodb-url", default="mongodb://127.0.0.1:27117/")
    args = parser.parse_args()
    asyncio.run(main(args.customer_invoices, args.all_invoices, args.runs, args.mongodb_url))
