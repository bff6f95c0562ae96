"""What invoicing's API adds for the portal, on FerretDB: the portal's short-lived signed tokens
(the same scopes as the static tokens), the customer's account and language, credit notes and
voids through the API, and the list filter of adjusted invoices.

The invoices are the ones of ``test_invoicing_http_api``: alpha CCR-2024-000001 (130.90 EUR),
beta CCR-2024-000002 (53.55 EUR), issued by the real close use case.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase
from test_invoicing_http_api import ALPHA_NO, BETA_NO, CATALOG, TOKENS, FakeRenderer, charge

from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.contacts_repo import MongoContactBook
from billing_invoicing.adapters.customer_accounts_repo import MongoCustomerAccountBook
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.domain.access import Scope, parse_tokens, verify_signed_token
from billing_invoicing.entrypoints.http import invoicing_api
from billing_invoicing.ports import PdfRendering
from billing_invoicing.service.customer_accounts import CustomerAccounts
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges
from billing_invoicing.service.generate_invoices import InvoicingPorts, close_invoice
from billing_invoicing.service.invoice_queries import QueryPorts
from billing_invoicing.service.settle_invoices import SettlementPorts
from billing_portal.domain.api_tokens import sign_api_token
from billing_schemas.events import PeriodClose, PeriodClosing

KEY = b"portal-signing-key-0123456789-abcdef"


def signed(scope: str, *, key: bytes = KEY, now: float | None = None, seconds: int = 60) -> str:
    # minted by the portal's own code: this is the contract between the two services
    return sign_api_token(
        key, scope=scope, user="ann@example.com", now=time.time() if now is None else now,
        seconds=seconds,
    )  # fmt: skip


def test_a_signed_token_proves_its_scope_and_nothing_else() -> None:
    now = time.time()
    assert verify_signed_token(KEY, signed("operator"), now=now) == Scope(None)
    assert verify_signed_token(KEY, signed("customer:alpha"), now=now) == Scope("alpha")
    assert verify_signed_token(KEY[::-1], signed("operator"), now=now) is None  # other key
    assert verify_signed_token(KEY, signed("operator", now=now - 120), now=now) is None  # expired
    assert verify_signed_token(KEY, signed("operator", seconds=3600), now=now) is None  # too long
    assert verify_signed_token(KEY, signed("customer:"), now=now) is None  # no customer
    assert verify_signed_token(KEY, "not.a.token", now=now) is None
    unsigned = jwt.encode(
        {"scope": "operator", "sub": "x", "aud": "billing-invoicing", "iat": int(now),
         "exp": int(now) + 60},
        key=None, algorithm="none",
    )  # fmt: skip
    assert verify_signed_token(KEY, unsigned, now=now) is None
    other_audience = jwt.encode(
        {"scope": "operator", "sub": "x", "aud": "elsewhere", "iat": int(now),
         "exp": int(now) + 60},
        KEY, algorithm="HS256",
    )  # fmt: skip
    assert verify_signed_token(KEY, other_audience, now=now) is None


async def issued_api(
    db: AsyncDatabase[dict[str, Any]], *, key: bytes = KEY, renderer: PdfRendering | None = None
) -> FastAPI:
    """Invoicing's API over ``db``, alpha's and beta's 2024-09 invoices issued by the real
    close (the portal's BillingApi contract test talks to it too)."""
    catalog = MongoCatalogRepository(db)
    from billing_catalog.models import Catalog

    await catalog.apply(Catalog.model_validate(CATALOG))
    invoices = MongoInvoiceRepository(db)
    await invoices.ensure_indexes()
    settlements = MongoSettlementRepository(db)
    await settlements.ensure_indexes()
    events = InMemoryInvoiceEvents()
    pdfs = InvoicePdfStore(db)
    ports = InvoicingPorts(catalog, invoices, renderer or FakeRenderer(), pdfs, events)
    await add_charges(
        invoices,
        [
            PositionedCharge(charge("a1", "alpha", "2024-09", "Amazon EC2", "80.00", "100.00")),
            PositionedCharge(charge("a2", "alpha", "2024-09", "Amazon S3", "7.50", "10.00")),
            PositionedCharge(charge("b1", "beta", "2024-09", "Amazon EC2", "36.00", "45.00")),
        ],
    )
    for cid in ("alpha", "beta"):
        marker = PeriodClosing.create(
            PeriodClose(customer_id=cid, period="2024-09", issue_date=date(2024, 10, 1)),
            source="test",
            correlation_id="t",
        )
        await close_invoice(ports, marker)
    settlement = SettlementPorts(catalog, invoices, settlements, events)
    return invoicing_api(
        tokens=parse_tokens(TOKENS),
        queries=QueryPorts(invoices, settlement, pdfs),
        invoicing=ports,
        contacts=MongoContactBook(db),
        signing_key=key,
        accounts=CustomerAccounts(MongoCustomerAccountBook(db), settlement),
    )


@pytest.fixture
async def client(mongo_db: AsyncDatabase[dict[str, Any]]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=await issued_api(mongo_db))
    async with httpx.AsyncClient(transport=transport, base_url="http://invoicing") as http:
        yield http


def auth(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {signed(scope)}"}


@pytest.mark.integration
async def test_signed_tokens_get_the_scope_of_static_ones(client: httpx.AsyncClient) -> None:
    mine = await client.get("/v1/invoices", headers=auth("customer:alpha"))
    assert [i["number"] for i in mine.json()["items"]] == [ALPHA_NO]
    for path in (f"/v1/invoices/{BETA_NO}", f"/v1/invoices/{BETA_NO}/pdf", "/v1/customers/beta",
                 "/v1/customers/beta/contacts"):  # fmt: skip
        assert (await client.get(path, headers=auth("customer:alpha"))).status_code == 404, path
    every = await client.get("/v1/invoices", headers=auth("operator"))
    assert len(every.json()["items"]) == 2
    expired = signed("operator", now=time.time() - 300)
    answer = await client.get("/v1/invoices", headers={"Authorization": f"Bearer {expired}"})
    assert answer.status_code == 401
    static = await client.get(
        "/v1/invoices", headers={"Authorization": f"Bearer {next(iter(TOKENS))}"}
    )
    assert static.status_code == 200  # static tokens keep working


@pytest.mark.integration
async def test_the_customer_sees_its_account_and_changes_its_language(
    client: httpx.AsyncClient,
) -> None:
    account = (await client.get("/v1/customers/alpha", headers=auth("customer:alpha"))).json()
    assert (account["name"], account["currency"], account["payment_terms_days"]) == (
        "Alpha GmbH", "EUR", 30,
    )  # fmt: skip
    changed = await client.patch(
        "/v1/customers/alpha/settings", headers=auth("customer:alpha"), json={"language": "de"}
    )
    assert (changed.status_code, changed.json()["language"]) == (200, "de")
    again = (await client.get("/v1/customers/alpha", headers=auth("operator"))).json()
    assert again["language"] == "de"
    bad = await client.patch(
        "/v1/customers/alpha/settings", headers=auth("customer:alpha"), json={"language": "xx"}
    )
    assert bad.status_code == 422
    other = await client.patch(
        "/v1/customers/beta/settings", headers=auth("customer:alpha"), json={"language": "fr"}
    )
    assert other.status_code == 404


@pytest.mark.integration
async def test_credit_notes_and_voids_are_for_operators_and_show_in_the_adjusted_filter(
    client: httpx.AsyncClient,
) -> None:
    body = {"amount": "10.00", "reason": "goodwill"}
    refused = await client.post(
        f"/v1/invoices/{ALPHA_NO}/credit-notes", headers=auth("customer:alpha"), json=body
    )
    assert refused.status_code == 403
    adjusted = await client.get("/v1/invoices?adjusted=true", headers=auth("operator"))
    assert adjusted.json()["items"] == []
    credited = await client.post(
        f"/v1/invoices/{ALPHA_NO}/credit-notes", headers=auth("operator"), json=body
    )
    assert credited.status_code == 201, credited.text
    assert credited.json()["amount"] == "10.00"
    adjusted = await client.get("/v1/invoices?adjusted=true", headers=auth("operator"))
    assert [i["number"] for i in adjusted.json()["items"]] == [ALPHA_NO]
    notes = await client.get("/v1/customers/alpha/credit-notes", headers=auth("customer:alpha"))
    [note] = notes.json()
    assert (note["invoice_number"], note["amount"], note["currency"], note["reason"]) == (
        ALPHA_NO, "10.00", "EUR", "goodwill",
    )  # fmt: skip
    assert note["number"] == credited.json()["credit_note_number"]
    other = await client.get("/v1/customers/alpha/credit-notes", headers=auth("customer:beta"))
    assert other.status_code == 404
    plain = await client.get("/v1/invoices?adjusted=false", headers=auth("operator"))
    assert [i["number"] for i in plain.json()["items"]] == [BETA_NO]
    voided = await client.post(
        f"/v1/invoices/{BETA_NO}/void", headers=auth("operator"), json={"reason": "wrong customer"}
    )
    assert (voided.status_code, voided.json()["status"]) == (201, "void"), voided.text
    dues = (await client.get(f"/v1/invoices/{BETA_NO}/dues", headers=auth("operator"))).json()
    assert dues["outstanding"] == "0.00"
