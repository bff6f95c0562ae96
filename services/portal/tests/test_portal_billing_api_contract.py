"""The :class:`~billing_portal.ports.BillingApi` port's contract, run against the portal's fake
(``tests/portal_fakes.py``) and the HTTP adapter talking to invoicing's real FastAPI app (over
``httpx.ASGITransport``, its storage on FerretDB, alpha's and beta's September invoices issued
by the real close use case): each call is answered within the asking user's scope (another
customer's invoice, file or account answers 404, an operator's report 403 to a customer),
errors raise :class:`~billing_portal.ports.ApiError` with the API's status, and a file comes
with its media type and name."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from portal_fakes import FakeBillingApi, invoice
from pymongo import AsyncMongoClient
from test_invoicing_http_api import ALPHA_NO, BETA_NO, CATALOG, TOKENS, charge

from billing_catalog.models import Catalog
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.contacts_repo import MongoContactBook
from billing_invoicing.adapters.customer_accounts_repo import MongoCustomerAccountBook
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents, InMemoryPdfRenderer
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.domain.access import parse_tokens
from billing_invoicing.entrypoints.http import invoicing_api
from billing_invoicing.service.customer_accounts import CustomerAccounts
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges
from billing_invoicing.service.generate_invoices import InvoicingPorts, close_invoice
from billing_invoicing.service.invoice_queries import QueryPorts
from billing_invoicing.service.settle_invoices import SettlementPorts
from billing_portal.adapters.billing_api import HttpBillingApi
from billing_portal.domain.users import Role, User
from billing_portal.ports import ApiError, BillingApi
from billing_schemas.events import PeriodClose, PeriodClosing

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from conftest import Infra

KEY = b"portal-contract-signing-key-0123456789"
OPERATOR = User("ops@cumulus.example", Role.OPERATOR, None)
ALPHA = User("ann@alpha.example", Role.CUSTOMER, "alpha")
BETA = User("bob@beta.example", Role.CUSTOMER, "beta")


@dataclass(frozen=True)
class World:
    """The API under test, holding alpha's invoice ``ALPHA_NO`` and beta's ``BETA_NO``."""

    api: BillingApi


def _fake() -> World:
    fake = FakeBillingApi()
    fake.invoices = [
        invoice(ALPHA_NO, "alpha", "130.90", "finalized", "2024-10-31"),
        invoice(BETA_NO, "beta", "53.55", "finalized", "2024-10-31"),
    ]
    return World(fake)


async def _invoicing_app(db: AsyncDatabase[dict[str, Any]]) -> Any:
    """Invoicing's API over FerretDB, with alpha's and beta's invoices closed for 2024-09."""
    catalog = MongoCatalogRepository(db)
    await catalog.apply(Catalog.model_validate(CATALOG))
    invoices = MongoInvoiceRepository(db)
    await invoices.ensure_indexes()
    settlements = MongoSettlementRepository(db)
    await settlements.ensure_indexes()
    events = InMemoryInvoiceEvents()
    pdfs = InvoicePdfStore(db)
    ports = InvoicingPorts(catalog, invoices, InMemoryPdfRenderer(), pdfs, events)
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
            source="contract",
            correlation_id="contract",
        )
        await close_invoice(ports, marker)
    settlement = SettlementPorts(catalog, invoices, settlements, events)
    return invoicing_api(
        tokens=parse_tokens(TOKENS),
        queries=QueryPorts(invoices, settlement, pdfs),
        invoicing=ports,
        contacts=MongoContactBook(db),
        signing_key=KEY,
        accounts=CustomerAccounts(MongoCustomerAccountBook(db), settlement),
    )


@pytest.fixture(
    scope="module", params=["fake", pytest.param("http", marks=pytest.mark.integration)]
)
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """One world per module: the tests only read, and closing invoices takes seconds."""
    if request.param == "fake":
        yield _fake()
        return
    infra: Infra = request.getfixturevalue("infra")
    name = f"t{uuid.uuid4().hex[:10]}"
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    try:
        app = await _invoicing_app(mongo[name])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as client:
            yield World(
                HttpBillingApi(
                    client, invoicing_url="http://invoicing/", ingest_url="http://ingest", key=KEY
                )
            )
        await mongo.drop_database(name)
    finally:
        await mongo.close()


def _numbers(page: Any) -> set[str]:
    return {row["number"] for row in page["items"]}


async def test_a_customer_lists_its_own_invoices_and_an_operator_everyones(world: World) -> None:
    assert _numbers(await world.api.get_json(ALPHA, "/v1/invoices")) == {ALPHA_NO}
    assert _numbers(await world.api.get_json(BETA, "/v1/invoices")) == {BETA_NO}
    assert _numbers(await world.api.get_json(OPERATOR, "/v1/invoices")) == {ALPHA_NO, BETA_NO}


async def test_a_customer_gets_its_dues_and_a_404_for_another_customers(world: World) -> None:
    dues = await world.api.get_json(ALPHA, f"/v1/invoices/{ALPHA_NO}/dues")

    assert dues["number"] == ALPHA_NO
    assert dues["outstanding"] == "130.90"
    with pytest.raises(ApiError) as refused:
        await world.api.get_json(ALPHA, f"/v1/invoices/{BETA_NO}/dues")
    assert refused.value.status == 404
    assert (await world.api.get_json(OPERATOR, f"/v1/invoices/{BETA_NO}/dues"))["number"] == BETA_NO


async def test_an_unknown_invoice_is_a_404_with_a_detail(world: World) -> None:
    with pytest.raises(ApiError) as refused:
        await world.api.get_json(OPERATOR, "/v1/invoices/CCR-2024-999999/dues")

    assert refused.value.status == 404
    assert refused.value.message()


async def test_a_file_comes_with_its_media_type_and_name_within_scope(world: World) -> None:
    content, media, name = await world.api.get_file(ALPHA, f"/v1/invoices/{ALPHA_NO}/pdf")

    assert content.startswith(b"%PDF-")
    assert media == "application/pdf"
    assert name == f"{ALPHA_NO}.pdf"
    with pytest.raises(ApiError) as refused:
        await world.api.get_file(ALPHA, f"/v1/invoices/{BETA_NO}/pdf")
    assert refused.value.status == 404


async def test_another_customers_account_is_a_404(world: World) -> None:
    own = await world.api.get_json(ALPHA, "/v1/customers/alpha")

    assert own["customer_id"] == "alpha"
    with pytest.raises(ApiError) as refused:
        await world.api.get_json(ALPHA, "/v1/customers/beta")
    assert refused.value.status == 404


async def test_an_operators_report_is_refused_to_a_customer(world: World) -> None:
    with pytest.raises(ApiError) as refused:
        await world.api.get_json(ALPHA, "/v1/reports/margin", {"period": "2024-09"})

    assert refused.value.status == 403
