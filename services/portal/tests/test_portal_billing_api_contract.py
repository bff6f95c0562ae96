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
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from portal_fakes import FakeBillingApi, invoice
from pymongo import AsyncMongoClient
from test_invoicing_http_api import ALPHA_NO, BETA_NO
from test_invoicing_portal_api import issued_api

from billing_invoicing.adapters.memory import InMemoryPdfRenderer
from billing_portal.adapters.billing_api import HttpBillingApi
from billing_portal.domain.users import Role, User
from billing_portal.ports import ApiError, BillingApi

if TYPE_CHECKING:
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
        app = await issued_api(mongo[name], key=KEY, renderer=InMemoryPdfRenderer())
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
