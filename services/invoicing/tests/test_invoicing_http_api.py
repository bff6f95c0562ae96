"""The invoicing HTTP API (entrypoints/http.py) with httpx against the ASGI app, on FerretDB.

Two German customers (VAT 19 %), invoiced by the real close use case with a stand-in renderer
whose bytes are stored in the real database:

* alpha, 2024-09: EC2 cost 80.00 EUR price 100.00, S3 cost 7.50 EUR price 10.00;
  total (100.00 + 10.00) x 1.19 = 130.90 EUR (tax 20.90); a 2024-10 draft of 5.00 so far;
* beta, 2024-09: one line cost 40.00 USD at 0.9 = 36.00 EUR, price 45.00;
  total 45.00 x 1.19 = 53.55 EUR.

Events are recorded by a fake publisher (the broker's side is proven in the e2e tests).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Catalog
from billing_catalog.store import CUSTOMERS
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.contacts_repo import MongoContactBook
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.app import create_app
from billing_invoicing.domain.access import parse_tokens
from billing_invoicing.domain.invoice import InvoiceDocument
from billing_invoicing.entrypoints.http import invoicing_api
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges
from billing_invoicing.service.generate_invoices import InvoicingPorts, close_invoice
from billing_invoicing.service.invoice_queries import QueryPorts
from billing_invoicing.service.settle_invoices import SettlementPorts
from billing_invoicing.settings import InvoicingSettings
from billing_notify.adapters.catalog import MongoCustomerDirectory
from billing_runtime.files import FileCollection
from billing_schemas.documents import INVOICE_PDF_FILES
from billing_schemas.events import (
    ChargeCategory,
    LineType,
    PeriodClose,
    PeriodClosing,
    RatedCharge,
)

if TYPE_CHECKING:
    from conftest import Infra

pytestmark = pytest.mark.integration

D = Decimal
OPERATOR = "operator-token-0123456789"
ALPHA = "alpha-token-0123456789ab"
BETA = "beta-token-0123456789abcd"
TOKENS = {OPERATOR: "operator", ALPHA: "customer:alpha", BETA: "customer:beta"}
ALPHA_NO = "CCR-2024-000001"
BETA_NO = "CCR-2024-000002"


def customer(cid: str, contacts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": cid,
        "name": f"{cid.title()} GmbH",
        "address": {"lines": ["Weg 1"], "country": "DE"},
        "currency": "EUR",
        "payment_terms_days": 30,
        "invoicing_entity": "cumulus",
        "price_list": "p",
        "contacts": contacts,
    }


CATALOG = {
    "invoicing_entities": [
        {
            "id": "cumulus",
            "name": "Cumulus Cloud Resellers GmbH",
            "address": {"lines": ["Wolkenstrasse 7"], "country": "DE"},
            "number_prefix": "CCR-",
            "email": "billing@cumulus.example",
            "payment_methods": [
                {"kind": "Bank transfer", "details": "IBAN DE89 3704 0044 0532 0130 00"},
                {"kind": "Card", "details": "https://pay.cumulus.example"},
            ],
        }
    ],
    "tax_rates": [{"country": "DE", "percent": "19"}],
    "price_lists": [{"id": "p", "versions": [{"version": 1, "effective_from": "2024-01-01"}]}],
    "customers": [
        customer(
            "alpha",
            [
                {"email": "billing@alpha.example", "roles": ["Billing"]},
                {"email": "tech@alpha.example", "roles": ["Tech", "DPO"], "primary": True},
            ],
        ),
        customer("beta", [{"email": "ap@beta.example", "roles": ["Billing"]}]),
    ],
}


def charge(
    cid: str,
    customer_id: str,
    period: str,
    service: str,
    cost: str,
    price: str,
    *,
    cost_currency: str = "EUR",
    fx: str | None = None,
) -> RatedCharge:
    converted = D(cost) * (D(fx) if fx else 1)
    return RatedCharge(
        charge_id=cid,
        record_id=cid,
        customer_id=customer_id,
        provider="AWS",
        sub_account_id="111",
        billing_period=period,
        charge_period_start=datetime(int(period[:4]), int(period[5:]), 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name=service,
        cost=D(cost),
        cost_currency=cost_currency,
        fx_rate=D(fx) if fx else None,
        price=D(price),
        currency="EUR",
        margin=D(price) - converted,
        rule="markup 25% on billed cost (global)",
        price_list_id="p",
        price_list_version=1,
    )


class FakeRenderer:
    async def render(self, invoice: InvoiceDocument) -> bytes:
        return f"%PDF-stand-in {invoice.number} {invoice.total}".encode()


@dataclass
class Api:
    client: httpx.AsyncClient
    events: InMemoryInvoiceEvents
    db: AsyncDatabase[dict[str, Any]]

    async def get(self, path: str, token: str | None = OPERATOR, **kw: Any) -> httpx.Response:
        return await self.call("GET", path, token, **kw)

    async def call(
        self, method: str, path: str, token: str | None = OPERATOR, **kw: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.request(method, path, headers=headers, **kw)


@pytest.fixture
async def api(mongo_db: AsyncDatabase[dict[str, Any]]) -> AsyncIterator[Api]:
    catalog = MongoCatalogRepository(mongo_db)
    await catalog.apply(Catalog.model_validate(CATALOG))
    invoices = MongoInvoiceRepository(mongo_db)
    await invoices.ensure_indexes()
    settlements = MongoSettlementRepository(mongo_db)
    await settlements.ensure_indexes()
    events = InMemoryInvoiceEvents()
    pdfs = InvoicePdfStore(mongo_db)
    ports = InvoicingPorts(catalog, invoices, FakeRenderer(), pdfs, events)
    await add_charges(
        invoices,
        [
            PositionedCharge(c)
            for c in (
                charge("a1", "alpha", "2024-09", "Amazon EC2", "80.00", "100.00"),
                charge("a2", "alpha", "2024-09", "Amazon S3", "7.50", "10.00"),
                charge(
                    "b1",
                    "beta",
                    "2024-09",
                    "Amazon EC2",
                    "40.00",
                    "45.00",
                    cost_currency="USD",
                    fx="0.9",
                ),
                charge("a3", "alpha", "2024-10", "Amazon EC2", "4.00", "5.00"),
            )
        ],
    )
    for cid in ("alpha", "beta"):
        marker = PeriodClosing.create(
            PeriodClose(customer_id=cid, period="2024-09", issue_date=date(2024, 10, 1)),
            source="test",
            correlation_id="t",
        )
        await close_invoice(ports, marker)
    queries = QueryPorts(invoices, SettlementPorts(catalog, invoices, settlements, events), pdfs)
    app = invoicing_api(
        tokens=parse_tokens(TOKENS),
        queries=queries,
        invoicing=ports,
        contacts=MongoContactBook(mongo_db),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://invoicing") as client:
        yield Api(client, events, mongo_db)


# Every route, as (method, path, json body): used for the 401 and 403 checks.
ALPHA_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/invoices?customer=alpha", None),
    ("GET", f"/v1/invoices/{ALPHA_NO}", None),
    ("GET", f"/v1/invoices/{ALPHA_NO}/pdf", None),
    ("GET", f"/v1/invoices/{ALPHA_NO}/csv", None),
    ("GET", f"/v1/invoices/{ALPHA_NO}/focus", None),
    ("GET", f"/v1/invoices/{ALPHA_NO}/dues", None),
    ("GET", "/v1/customers/alpha/contacts", None),
    ("POST", "/v1/customers/alpha/contacts", {"email": "x@alpha.example"}),
    ("PATCH", "/v1/customers/alpha/contacts/tech@alpha.example", {"name": "T"}),
    ("DELETE", "/v1/customers/alpha/contacts/tech@alpha.example", None),
    ("GET", "/v1/customers/alpha/credits", None),
]
OPERATOR_ROUTES: list[tuple[str, str, Any]] = [
    (
        "POST",
        f"/v1/invoices/{ALPHA_NO}/payments",
        {"amount": "1.00", "method": "Card", "reference": "R"},
    ),
    ("GET", "/v1/reports/margin?period=2024-09", None),
    ("POST", "/v1/periods/2024-10/close", {"dry_run": True}),
    ("PUT", "/v1/catalog", {"customers": []}),
    (
        "POST",
        "/v1/customers/alpha/charges",
        {"period": "2024-10", "description": "Setup", "quantity": "1", "unit_price": "10.00"},
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), ALPHA_ROUTES + OPERATOR_ROUTES)
async def test_every_route_wants_a_valid_token(api: Api, method: str, path: str, body: Any) -> None:
    for token in (None, "not-a-token-0123456789", OPERATOR + "x"):
        answer = await api.call(method, path, token, json=body)
        assert answer.status_code == 401, (token, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "body"), ALPHA_ROUTES)
async def test_a_customer_token_is_answered_404_for_another_customers_resources(
    api: Api, method: str, path: str, body: Any
) -> None:
    # as if alpha did not exist: the same answer as for a customer or number never issued,
    # naming neither the token's customer nor the owner
    answer = await api.call(method, path, BETA, json=body)
    assert answer.status_code == 404, answer.text
    unknown = await api.call(
        method, path.replace("alpha", "nobody").replace(ALPHA_NO, "CCR-2024-999999"), BETA,
        json=body,
    )  # fmt: skip
    assert unknown.status_code == 404, unknown.text
    detail = answer.json()["detail"]
    assert "beta" not in detail
    assert detail == unknown.json()["detail"].replace("nobody", "alpha").replace(
        "CCR-2024-999999", ALPHA_NO
    )


@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_ROUTES)
async def test_a_customer_token_is_refused_what_only_operators_do(
    api: Api, method: str, path: str, body: Any
) -> None:
    answer = await api.call(method, path, ALPHA, json=body)
    assert answer.status_code == 403, answer.text
    assert "needs an operator token" in answer.json()["detail"]
    assert api.events.payments == []
    assert api.events.markers == []


async def test_list_filters_by_customer_period_status_and_total_with_paging(api: Api) -> None:
    async def numbers(query: str, token: str = OPERATOR) -> list[str | None]:
        answer = await api.get(f"/v1/invoices?{query}", token)
        assert answer.status_code == 200, answer.text
        return [i["number"] or i["invoice_id"] for i in answer.json()["items"]]

    # newest period first, then by customer
    assert await numbers("") == ["alpha:2024-10", ALPHA_NO, BETA_NO]
    assert await numbers("customer=beta") == [BETA_NO]
    assert await numbers("period=2024-09") == [ALPHA_NO, BETA_NO]
    assert await numbers("status=draft") == ["alpha:2024-10"]
    assert await numbers("status=finalized&period=2024-09") == [ALPHA_NO, BETA_NO]
    assert await numbers("min_total=100") == [ALPHA_NO]  # 130.90 >= 100 > 53.55
    assert await numbers("max_total=53.55") == [BETA_NO]  # the bound is included
    assert await numbers("min_total=53.56&max_total=130.89") == []
    # a customer token sees its own invoices without asking
    assert await numbers("", ALPHA) == ["alpha:2024-10", ALPHA_NO]

    first = (await api.get("/v1/invoices?limit=2")).json()
    assert (len(first["items"]), first["next_offset"]) == (2, 2)
    last = (await api.get("/v1/invoices?limit=2&offset=2")).json()
    assert ([i["number"] for i in last["items"]], last["next_offset"]) == ([BETA_NO], None)

    bad = await api.get("/v1/invoices?min_total=ten")
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "min_total"]
    # amounts and offsets are bounded: 422 naming the parameter, never a 500
    for query, name in (
        ("min_total=1E+999999", "min_total"),
        ("max_total=-1E%2B999999999999999999", "max_total"),
        ("offset=100000000000000000000", "offset"),
    ):
        refused = await api.get(f"/v1/invoices?{query}")
        assert refused.status_code == 422, (query, refused.text)
        assert refused.json()["detail"][0]["loc"] == ["query", name]
    # any total money on the wire may carry is a valid bound, far beyond what is stored
    assert await numbers("min_total=1E%2B23") == []
    assert await numbers("max_total=-1E%2B23") == []
    assert await numbers("max_total=1E%2B23&period=2024-09") == [ALPHA_NO, BETA_NO]
    assert (await api.get("/v1/invoices?status=unpaid")).status_code == 422


async def test_one_invoice_has_its_amounts_as_decimal_strings_and_no_cost_for_customers(
    api: Api,
) -> None:
    row = (await api.get(f"/v1/invoices/{ALPHA_NO}")).json()
    assert {k: row[k] for k in ("total", "outstanding", "issue_date", "due_date", "status")} == {
        "total": "130.90",  # (100.00 + 10.00) x 1.19
        "outstanding": "130.90",
        "issue_date": "2024-10-01",
        "due_date": "2024-10-31",  # 30 days' terms
        "status": "finalized",
    }
    assert row["document"]["tax"] == "20.90"  # 110.00 x 0.19
    assert all("cost" in line for line in row["document"]["lines"])  # the operator's view
    mine = (await api.get(f"/v1/invoices/{ALPHA_NO}", ALPHA)).json()
    assert mine["document"]["lines"]
    assert not any("cost" in line for line in mine["document"]["lines"])

    draft = (await api.get("/v1/invoices/alpha:2024-10", ALPHA)).json()
    assert (draft["status"], draft["draft_total"], draft["total"]) == ("draft", "5.00", None)
    assert draft["draft_lines"] == [
        {
            "period": "2024-10",
            "provider": "AWS",
            "service_name": "Amazon EC2",
            "charge_count": 1,
            "price": "5.00",
            "cost": None,  # the operator's only
        }
    ]
    assert (await api.get("/v1/invoices/CCR-2024-999999")).status_code == 404


async def test_the_pdf_is_the_one_stored_and_a_draft_has_none(api: Api) -> None:
    doc = await api.db["invoicing_invoices"].find_one({"number": ALPHA_NO})
    assert doc is not None
    stored = await FileCollection(api.db[INVOICE_PDF_FILES]).get(doc["pdf_file_id"])
    answer = await api.get(f"/v1/invoices/{ALPHA_NO}/pdf", ALPHA)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert f'filename="{ALPHA_NO}.pdf"' in answer.headers["content-disposition"]
    assert answer.content == stored == f"%PDF-stand-in {ALPHA_NO} 130.90".encode()
    missing = await api.get("/v1/invoices/alpha:2024-10/pdf", ALPHA)
    assert (missing.status_code, missing.json()["detail"]) == (
        404,
        "invoice alpha:2024-10 has no PDF yet: it is draft",
    )


async def test_the_csv_has_a_row_per_usage_line_and_no_cost_for_customers(api: Api) -> None:
    answer = await api.get(f"/v1/invoices/{ALPHA_NO}/csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["charge_id"], r["cost"], r["price"], r["margin"]) for r in rows] == [
        ("a1", "80.000000000", "100.000000000", "20.000000000"),
        ("a2", "7.500000000", "10.000000000", "2.500000000"),
    ]
    customers_copy = await api.get(f"/v1/invoices/{ALPHA_NO}/csv", ALPHA)
    mine = list(csv.DictReader(io.StringIO(customers_copy.text)))
    assert [r["price"] for r in mine] == ["100.000000000", "10.000000000"]
    assert not {"cost", "margin", "rule", "fx_rate"} & set(mine[0])


async def test_dues_and_a_payment_recorded_once(api: Api) -> None:
    dues = (await api.get(f"/v1/invoices/{ALPHA_NO}/dues", ALPHA)).json()
    assert (dues["subtotal"], dues["taxes"], dues["total"], dues["outstanding"]) == (
        "110.00",
        [{"label": "VAT 19% (DE)", "tax": "20.90"}],
        "130.90",
        "130.90",
    )
    assert [m["kind"] for m in dues["payment_methods"]] == ["Bank transfer", "Card"]
    assert dues["payment_reference"] == ALPHA_NO

    body = {"amount": "30.90", "method": "bank transfer", "reference": "BT-1"}
    body["paid_on"] = "2024-10-20"
    payments = f"/v1/invoices/{ALPHA_NO}/payments"
    first = await api.call("POST", f"/v1/invoices/{ALPHA_NO}/payments", json=body)
    assert first.status_code == 201, first.text
    paid = first.json()
    # 130.90 - 30.90 = 100.00
    assert (paid["status"], paid["outstanding_after"], paid["already_recorded"]) == (
        "partially_paid",
        "100.00",
        False,
    )
    assert paid["dues"]["payments"][0]["method"] == "Bank transfer"  # the seller's spelling
    again = await api.call("POST", f"/v1/invoices/{ALPHA_NO}/payments", json=body)
    assert again.status_code == 200
    assert again.json()["already_recorded"] is True
    assert again.json()["payment_id"] == paid["payment_id"]
    assert len(api.events.payments) == 1  # one event per payment, not per request

    other = await api.call("POST", payments, json=body | {"amount": "31.00"})
    assert other.status_code == 422
    assert "already recorded with amount 30.90" in other.json()["detail"]
    floaty = await api.call("POST", payments, json=body | {"amount": 30.9})
    assert floaty.status_code == 422
    assert floaty.json()["detail"][0]["loc"] == ["body", "amount"]

    rest = body | {"amount": "100.00", "method": "Card", "reference": "C-1"}
    done = (await api.call("POST", f"/v1/invoices/{ALPHA_NO}/payments", json=rest)).json()
    assert (done["status"], done["dues"]["outstanding"], done["dues"]["paid"]) == (
        "paid",
        "0.00",
        "130.90",  # 30.90 + 100.00
    )
    row = (await api.get("/v1/invoices?customer=alpha&status=paid", ALPHA)).json()["items"]
    assert [(r["number"], r["outstanding"]) for r in row] == [(ALPHA_NO, "0.00")]
    assert [(e.data.invoice_number, e.data.settled_by) for e in api.events.paid] == [
        (ALPHA_NO, done["payment_id"])
    ]


async def test_contacts_crud_keeps_a_billing_contact_and_notify_reads_the_change(
    api: Api,
) -> None:
    path = "/v1/customers/alpha/contacts"
    listed = (await api.get(path, ALPHA)).json()
    assert [(c["contact_id"], c["roles"], c["primary"]) for c in listed] == [
        ("billing@alpha.example", ["Billing"], False),
        ("tech@alpha.example", ["Tech", "DPO"], True),
    ]
    added = await api.call(
        "POST", path, ALPHA, json={"email": "New@Alpha.example", "roles": ["DPO", "Billing"]}
    )
    assert added.status_code == 201, added.text
    assert (added.json()["contact_id"], added.json()["roles"]) == (
        "new@alpha.example",
        ["Billing", "DPO"],  # kept in Billing, Tech, DPO order
    )
    twice = await api.call("POST", path, ALPHA, json={"email": "new@alpha.example"})
    assert twice.status_code == 409
    assert twice.json()["detail"][0]["loc"] == ["body", "email"]
    bad = await api.call("POST", path, ALPHA, json={"email": "nobody", "roles": ["Boss"]})
    assert bad.status_code == 422
    assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {
        ("body", "email"),
        ("body", "roles", 0),
    }

    # move the Billing role: the old address gives it up, the new one holds it
    old = await api.call("PATCH", f"{path}/billing@alpha.example", ALPHA, json={"roles": []})
    assert (old.status_code, old.json()["roles"]) == (200, [])
    last = await api.call("PATCH", f"{path}/NEW@alpha.example", ALPHA, json={"roles": ["DPO"]})
    assert last.status_code == 409
    assert last.json()["detail"][0]["loc"] == ["body", "roles"]
    primary = await api.call("PATCH", f"{path}/new@alpha.example", ALPHA, json={"primary": True})
    assert primary.json()["primary"] is True
    assert (await api.call("DELETE", f"{path}/billing@alpha.example", ALPHA)).status_code == 204
    assert (await api.call("DELETE", f"{path}/billing@alpha.example", ALPHA)).status_code == 404
    assert (await api.call("DELETE", f"{path}/new@alpha.example", ALPHA)).status_code == 409
    assert (await api.get("/v1/customers/nobody/contacts")).status_code == 404

    # notify reads the customer at send time from the same document: the next email goes to
    # the new Billing contact; the tech contact is no longer primary
    stored = await MongoCustomerDirectory(api.db).customer("alpha")
    assert stored is not None
    assert [str(c.email) for c in stored.billing_contacts()] == ["New@alpha.example"]
    assert [(str(c.email), c.primary) for c in stored.contacts] == [
        ("tech@alpha.example", False),
        ("New@alpha.example", True),
    ]
    doc = await api.db[CUSTOMERS].find_one({"_id": "alpha"})
    assert doc is not None
    assert doc["name"] == "Alpha GmbH"  # the rest of the customer untouched


async def test_margin_report_per_customer_provider_and_service(api: Api) -> None:
    answer = await api.get("/v1/reports/margin?period=2024-09")
    assert answer.status_code == 200, answer.text
    assert {r["provider"] for r in answer.json()["rows"]} == {"AWS"}
    rows = [
        (
            r["customer_id"],
            r["service_name"],
            r["cost"],
            r["cost_currency"],
            r["cost_converted"],
            r["price"],
            r["margin"],
            r["margin_percent"],
        )
        for r in answer.json()["rows"]
    ]
    assert rows == [
        # 100 - 80 = 20, 20 / 100 = 20 %
        ("alpha", "Amazon EC2", "80.00", "EUR", "80.00", "100.00", "20.00", "20.00"),
        # 10 - 7.50 = 2.50, 2.50 / 10 = 25 %
        ("alpha", "Amazon S3", "7.50", "EUR", "7.50", "10.00", "2.50", "25.00"),
        # 40.00 USD x 0.9 = 36.00 EUR; 45 - 36 = 9, 9 / 45 = 20 %
        ("beta", "Amazon EC2", "40.00", "USD", "36.00", "45.00", "9.00", "20.00"),
    ]
    only = (await api.get("/v1/reports/margin?period=2024-09&customer=beta")).json()["rows"]
    assert [r["customer_id"] for r in only] == ["beta"]
    assert (await api.get("/v1/reports/margin?period=2024-13")).status_code == 422


async def test_period_close_dry_run_then_markers(api: Api) -> None:
    dry = await api.call("POST", "/v1/periods/2024-10/close", json={"dry_run": True})
    assert dry.status_code == 200, dry.text
    assert [(o["invoice_id"], o["total"], o["action"]) for o in dry.json()["preview"]] == [
        ("alpha:2024-10", "5.95", "would finalize")  # 5.00 x 1.19
    ]
    assert api.events.markers == []
    closing = await api.call("POST", "/v1/periods/2024-10/close", json={})
    assert closing.status_code == 202
    assert closing.json()["closing"] == ["alpha:2024-10"]
    assert [(m.data.customer_id, m.data.period) for m in api.events.markers] == [
        ("alpha", "2024-10")
    ]
    # 2024-09 is finalized: nothing to close
    assert (await api.call("POST", "/v1/periods/2024-09/close")).json()["closing"] == []
    bad = await api.call("POST", "/v1/periods/2024-1/close")
    assert (bad.status_code, bad.json()["detail"][0]["loc"]) == (422, ["path", "period"])


async def test_catalog_apply_through_the_api(api: Api) -> None:
    gamma = customer("gamma", [{"email": "ap@gamma.example", "roles": ["Billing"]}])
    whole = CATALOG | {"customers": [customer("alpha", []), customer("beta", []), gamma]}
    answer = await api.call("PUT", "/v1/catalog", json=whole)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["customers"], answer.json()["invoicing_entities"]) == (3, 1)
    assert await MongoCustomerDirectory(api.db).customer("gamma") is not None

    broken = {k: v for k, v in gamma.items() if k != "currency"}
    refused = await api.call("PUT", "/v1/catalog", json=whole | {"customers": [broken]})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "customers", 0, "currency"]
    changed = {"id": "p", "versions": [{"version": 1, "effective_from": "2024-02-01"}]}
    conflict = await api.call("PUT", "/v1/catalog", json={"price_lists": [changed]})
    assert conflict.status_code == 409


async def test_the_openapi_document_lists_every_route(api: Api) -> None:
    document = (await api.get("/v1/openapi.json", None)).json()
    assert set(document["paths"]) == {
        "/v1/invoices",
        "/v1/invoices/{number}",
        "/v1/invoices/{number}/pdf",
        "/v1/invoices/{number}/csv",
        "/v1/invoices/{number}/focus",
        "/v1/invoices/{number}/dues",
        "/v1/invoices/{number}/payments",
        "/v1/customers/{customer_id}/contacts",
        "/v1/customers/{customer_id}/contacts/{contact_id}",
        "/v1/customers/{customer_id}/credits",
        "/v1/customers/{customer_id}/charges",
        "/v1/reports/margin",
        "/v1/periods/{period}/close",
        "/v1/catalog",
        "/v1/documents/{file_id}",
    }
    assert "HTTPBearer" in document["components"]["securitySchemes"]


async def test_the_service_app_serves_the_api_beside_health_and_metrics(
    infra: Infra, namespace: str
) -> None:
    settings = InvoicingSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        mongodb_url=infra.mongodb_url,
        mongodb_database=namespace,
        topic_namespace=f"{namespace}.",
        api_tokens=TOKENS,
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            assert (await client.get("/live")).status_code == 204
            assert (await client.get("/metrics")).status_code == 200
            assert (await client.get("/v1/invoices")).status_code == 401
            auth = {"Authorization": f"Bearer {ALPHA}"}
            answer = await client.get("/v1/invoices", headers=auth)
            assert (answer.status_code, answer.json()["items"]) == (200, [])
            assert (await client.get("/v1/docs")).status_code == 200
            assert (await client.get("/v1x")).status_code == 404  # not under the prefix
    finally:
        await app.stop()


async def test_one_off_charges_and_the_credit_ledger_through_the_api(api: Api) -> None:
    setup = {"period": "2024-10", "description": "Setup fee", "quantity": "3", "unit_price": "25"}
    sent = await api.call("POST", "/v1/customers/alpha/charges", json=setup)
    # nothing consumes the charge stream here: sent, not on the draft yet (202)
    assert (sent.status_code, sent.json()["amount"], sent.json()["on_draft"]) == (202, "75", False)
    [event] = api.events.charges
    await add_charges(MongoInvoiceRepository(api.db), [PositionedCharge(event.data)])
    again = await api.call("POST", "/v1/customers/alpha/charges", json=setup)
    assert (again.status_code, again.json()["already_added"]) == (200, True)
    draft = (await api.get("/v1/invoices/alpha:2024-10", ALPHA)).json()
    assert ("one-off", "Setup fee", "75.00") in [
        (x["provider"], x["service_name"], x["price"]) for x in draft["draft_lines"]
    ]
    closed = await api.call(
        "POST", "/v1/customers/alpha/charges", json=setup | {"period": "2024-09"}
    )
    assert closed.status_code == 422
    assert "is finalized already" in closed.json()["detail"]
    unknown = await api.call("POST", "/v1/customers/nobody/charges", json=setup)
    assert unknown.status_code == 404

    payment = {"amount": "200.00", "method": "Card", "reference": "R-9"}
    paid = await api.call("POST", f"/v1/invoices/{ALPHA_NO}/payments", json=payment)
    assert paid.status_code == 201, paid.text
    added = Decimal(paid.json()["customer_credit_added"])
    mine = (await api.get("/v1/customers/alpha/credits", ALPHA)).json()
    assert [(e["kind"], Decimal(e["amount"])) for e in mine["entries"]] == [("overpayment", added)]
    assert {c: Decimal(b) for c, b in mine["balances"].items()} == {"EUR": added}
