"""E-invoices through the API (``GET /v1/invoices/{number}/einvoice``) and the use case behind it
and the CLI, on FerretDB: an invoice closed by the real use case and a credit note issued on it,
downloaded in every format, read back and validated by Mustang.

alpha (DE, 19 %), 2024-09: EC2 100.00 + S3 10.00 = 110.00, VAT 20.90, total 130.90 EUR;
credit note of 11.90 on it: tax 11.90 x 20.90 / 130.90 = 1.9000... -> 1.90, net 10.00.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from einvoice_cases import REPORTS, SELLER, errors_in, validate
from facturx import get_facturx_xml_from_pdf  # type: ignore[import-untyped]
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Catalog
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.contacts_repo import MongoContactBook
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.einvoice import read_amounts
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents
from billing_invoicing.adapters.pdf import PdfRenderer
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.bootstrap import einvoice_ports
from billing_invoicing.domain.access import parse_tokens
from billing_invoicing.domain.invoice import InvoiceDocument
from billing_invoicing.entrypoints.http import invoicing_api
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges
from billing_invoicing.service.generate_invoices import InvoicingPorts, close_invoice
from billing_invoicing.service.invoice_queries import QueryPorts
from billing_invoicing.service.settle_invoices import SettlementPorts, issue_credit_note
from billing_schemas.events import (
    ChargeCategory,
    LineType,
    PeriodClose,
    PeriodClosing,
    RatedCharge,
)

pytestmark = pytest.mark.integration

D = Decimal
OPERATOR = "operator-token-0123456789"
ALPHA = "alpha-token-0123456789ab"
BETA = "beta-token-0123456789abcd"
TOKENS = {OPERATOR: "operator", ALPHA: "customer:alpha", BETA: "customer:beta"}
NUMBER = "CCR-2024-000001"


def buyer(cid: str) -> dict[str, Any]:
    return {
        "id": cid,
        "name": f"{cid.title()} GmbH",
        "address": {"lines": ["Weg 1"], "country": "DE", "city": "Köln", "postal_code": "50667"},
        "vat_id": "DE987654328",
        "currency": "EUR",
        "invoicing_entity": "cumulus",
        "price_list": "p",
        "contacts": [{"email": f"ap@{cid}.example", "roles": ["Billing"]}],
        "einvoice": ["facturx", "xrechnung"],
        "einvoice_buyer_reference": "05315000-ALPHA-12",
        "peppol_participant_id": "0088:4000001000005",
    }


CATALOG = {
    "invoicing_entities": [SELLER.model_dump(mode="json", exclude_none=True)],
    "tax_rates": [{"country": "DE", "percent": "19"}],
    "price_lists": [{"id": "p", "versions": [{"version": 1, "effective_from": "2024-01-01"}]}],
    "customers": [buyer("alpha"), buyer("beta")],
}


def charge(cid: str, service: str, price: str) -> RatedCharge:
    return RatedCharge(
        charge_id=cid,
        record_id=cid,
        customer_id="alpha",
        provider="AWS",
        sub_account_id="111",
        billing_period="2024-09",
        charge_period_start=datetime(2024, 9, 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name=service,
        cost=D(price),
        cost_currency="EUR",
        price=D(price),
        currency="EUR",
        margin=D(0),
        rule="list price",
        price_list_id="p",
        price_list_version=1,
    )


class StoredPdfStandIn:
    """The close use case's renderer: the plain PDF is not what this test is about."""

    async def render(self, invoice: InvoiceDocument) -> bytes:
        return f"%PDF-stand-in {invoice.number}".encode()


@dataclass
class Api:
    client: httpx.AsyncClient
    credit_note: str

    async def einvoice(self, number: str, fmt: str, token: str = OPERATOR) -> httpx.Response:
        return await self.client.get(
            f"/v1/invoices/{number}/einvoice",
            params={"format": fmt},
            headers={"Authorization": f"Bearer {token}"},
        )


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
    ports = InvoicingPorts(catalog, invoices, StoredPdfStandIn(), pdfs, events)
    await add_charges(
        invoices,
        [
            PositionedCharge(charge("a1", "Amazon EC2", "100.00")),
            PositionedCharge(charge("a2", "Amazon S3", "10.00")),
        ],
    )
    marker = PeriodClosing.create(
        PeriodClose(customer_id="alpha", period="2024-09", issue_date=date(2024, 10, 1)),
        source="test",
        correlation_id="t",
    )
    await close_invoice(ports, marker)
    settlement = SettlementPorts(catalog, invoices, settlements, events)
    note = await issue_credit_note(
        settlement,
        number=NUMBER,
        amount=D("11.90"),
        reason="Outage credit",
        issue_date=date(2024, 10, 20),
        correlation_id="t",
    )
    async with PdfRenderer() as renderer:
        app = invoicing_api(
            tokens=parse_tokens(TOKENS),
            queries=QueryPorts(invoices, settlement, pdfs),
            invoicing=ports,
            contacts=MongoContactBook(mongo_db),
            einvoices=einvoice_ports(mongo_db, ports, renderer),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://invoicing") as client:
            yield Api(client, note.credit_note.credit_note_number)


async def test_every_format_of_the_invoice_has_its_amounts(api: Api) -> None:
    for fmt in ("xrechnung", "peppol"):
        answer = await api.einvoice(NUMBER, fmt, ALPHA)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/xml"
        assert f'filename="{NUMBER}-{fmt}.xml"' in answer.headers["content-disposition"]
        amounts = read_amounts(answer.content)
        assert (amounts["BT-109"], amounts["BT-110"], amounts["BT-112"]) == (
            D("110.00"),
            D("20.90"),
            D("130.90"),
        )
        assert b"05315000-ALPHA-12" in answer.content  # the buyer reference from the catalog
    pdf = await api.einvoice(NUMBER, "facturx", ALPHA)
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    name, embedded = get_facturx_xml_from_pdf(pdf.content, check_xsd=True)
    assert name == "factur-x.xml"
    assert read_amounts(embedded)["BT-112"] == D("130.90")


async def test_a_credit_note_by_its_number_is_a_381_referencing_the_invoice(api: Api) -> None:
    answer = await api.einvoice(api.credit_note, "peppol")
    assert answer.status_code == 200, answer.text
    assert b"<cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>" in answer.content
    assert NUMBER.encode() in answer.content  # BT-25
    amounts = read_amounts(answer.content)
    assert (amounts["BT-109"], amounts["BT-110"], amounts["BT-112"]) == (
        D("10.00"),
        D("1.90"),
        D("11.90"),
    )
    pdf = await api.einvoice(api.credit_note, "facturx")
    assert pdf.status_code == 200, pdf.text
    _, embedded = get_facturx_xml_from_pdf(pdf.content, check_xsd=True)
    assert read_amounts(embedded)["BT-112"] == D("11.90")


async def test_another_customer_and_unknown_numbers_are_refused(api: Api) -> None:
    other = await api.einvoice(NUMBER, "peppol", BETA)
    assert other.status_code == 404  # nothing of another customer is told: not even its id
    assert other.json() == {"detail": f"no invoice or credit note {NUMBER!r}"}
    assert (await api.einvoice("CCR-2024-999999", "peppol")).status_code == 404
    assert (await api.einvoice(NUMBER, "pdf")).status_code == 422


@pytest.mark.timeout(600)
async def test_what_the_api_returns_passes_the_mustang_validator(
    api: Api, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    files = []
    for number, formats in (
        (NUMBER, ("facturx", "xrechnung", "peppol")),
        (api.credit_note, ("facturx", "xrechnung", "peppol")),
    ):
        for fmt in formats:
            answer = await api.einvoice(number, fmt)
            assert answer.status_code == 200, answer.text
            path = tmp_path / f"{number}-{fmt}.{'pdf' if fmt == 'facturx' else 'xml'}"
            path.write_bytes(answer.content)
            files.append(path)
    reports = REPORTS / request.node.name
    verdicts = validate(files, reports)
    invalid = {p.name: errors_in(v.report) for p, v in verdicts.items() if not v.valid}
    assert not invalid, f"invalid e-invoices (reports kept in {reports}): {invalid}"
