"""Issue 17: a credit note gets its PDF when it is issued, stored like an invoice's and named in
``CreditNoteIssued`` (notify attaches it to the credit-note email); a customer who receives
Factur-X gets it as Factur-X (type 381). On the real database (FerretDB, GridFS) with the real
renderer pool; the invoice itself is closed with a stand-in PDF."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import pypdf
import pytest
from einvoice_cases import RATES, SELLER, customer
from facturx import get_xml_from_pdf  # type: ignore[import-untyped]
from invoicing_test_support import rated
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Catalog
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.einvoice_renderer import CustomerPdfRenderer
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents, InMemoryInvoicePdfStore
from billing_invoicing.adapters.pdf import PdfRenderer
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.domain.invoice import InvoiceDocument
from billing_invoicing.service.credit_note_documents import CreditNotePdfPorts
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges
from billing_invoicing.service.generate_invoices import InvoicingPorts, close_invoice
from billing_invoicing.service.settle_invoices import SettlementPorts, issue_credit_note
from billing_schemas.documents import INVOICE_PDF_FILES
from billing_schemas.events import PeriodClose, PeriodClosing

pytestmark = pytest.mark.integration

D = Decimal


class StandInRenderer:
    async def render(self, invoice: InvoiceDocument) -> bytes:
        return f"%PDF-stand-in {invoice.number}".encode()


@pytest.fixture(scope="module")
async def renderer() -> AsyncIterator[PdfRenderer]:
    async with PdfRenderer(max_workers=1) as pool:
        yield pool


async def issued(
    db: AsyncDatabase[dict[str, Any]], renderer: PdfRenderer, **buyer: Any
) -> tuple[SettlementPorts, InMemoryInvoiceEvents, InvoicePdfStore, str]:
    """One finalized invoice of 100.00 + 19 % for a German customer; the settlement ports
    with credit-note PDFs on."""
    catalog = MongoCatalogRepository(db)
    buyer_ = customer("alpha", "DE", **buyer)
    await catalog.apply(
        Catalog.model_validate(
            {
                "invoicing_entities": [SELLER.model_dump(mode="json")],
                "tax_rates": [r.model_dump(mode="json") for r in RATES],
                "price_lists": [
                    {"id": "standard", "versions": [{"version": 1, "effective_from": "2024-01-01"}]}
                ],
                "customers": [buyer_.model_dump(mode="json")],
            }
        )
    )
    invoices = MongoInvoiceRepository(db)
    await invoices.ensure_indexes()
    settlements = MongoSettlementRepository(db)
    await settlements.ensure_indexes()
    events = InMemoryInvoiceEvents()
    await add_charges(invoices, [PositionedCharge(rated("c1", price="100.00"))])
    ports = InvoicingPorts(catalog, invoices, StandInRenderer(), InMemoryInvoicePdfStore(), events)
    marker = PeriodClosing.create(
        PeriodClose(customer_id="alpha", period="2024-09", issue_date=date(2024, 10, 1)),
        source="test",
        correlation_id="t",
    )
    number = (await close_invoice(ports, marker)).number
    assert number is not None
    pdfs = InvoicePdfStore(db)
    notes = CreditNotePdfPorts(CustomerPdfRenderer(renderer, catalog), pdfs)
    return SettlementPorts(catalog, invoices, settlements, events, notes), events, pdfs, number


def text_of(pdf: bytes) -> str:
    pages = pypdf.PdfReader(io.BytesIO(pdf)).pages
    return " ".join(" ".join(page.extract_text().split()) for page in pages)  # lines joined


async def test_a_credit_note_is_stored_as_a_pdf_at_issue_and_named_in_its_event(
    mongo_db: AsyncDatabase[dict[str, Any]], renderer: PdfRenderer
) -> None:
    ports, events, pdfs, number = await issued(mongo_db, renderer, language="de", einvoice=[])

    async def credit() -> Any:
        return await issue_credit_note(
            ports,
            number=number,
            amount=D("11.90"),
            reason="Ausfall im September",
            issue_date=date(2024, 10, 20),
            correlation_id="t",
        )

    outcome = await credit()
    note = outcome.credit_note
    assert note.pdf_file_id is not None
    assert note.pdf_sha256 is not None
    [event] = events.credit_notes
    assert (event.data.pdf_file_id, event.data.pdf_sha256) == (note.pdf_file_id, note.pdf_sha256)
    pdf = await pdfs.load(note.pdf_file_id)
    text = text_of(pdf)
    # in the customer's language, with the credit note's own figures (net 10.00, tax 1.90)
    for shown in (
        "Rechnungskorrektur",
        note.credit_note_number,
        number,
        "Ausfall im September",
        "10,00 €",
        "1,90 €",
        "11,90 €",
    ):
        assert shown in text
    assert get_xml_from_pdf(pdf, check_xsd=False) == (False, False)  # the plain PDF: no XML

    again = await credit()  # a retried issue: the same note, the PDF stored first
    assert again.already_issued
    assert again.credit_note.pdf_file_id == note.pdf_file_id
    stored = await mongo_db[INVOICE_PDF_FILES].count_documents({})
    assert stored == 1


async def test_a_customer_receiving_facturx_gets_its_credit_note_as_facturx(
    mongo_db: AsyncDatabase[dict[str, Any]], renderer: PdfRenderer
) -> None:
    ports, _, pdfs, number = await issued(mongo_db, renderer, einvoice=["facturx"])

    outcome = await issue_credit_note(
        ports,
        number=number,
        amount=None,
        reason="issued in error",
        issue_date=date(2024, 10, 20),
        correlation_id="t",
    )

    assert outcome.credit_note.pdf_file_id is not None
    pdf = await pdfs.load(outcome.credit_note.pdf_file_id)
    name, xml = get_xml_from_pdf(pdf, check_xsd=False)
    assert name == "factur-x.xml"
    assert xml is not None
    assert b"<ram:TypeCode>381</ram:TypeCode>" in xml
    assert number.encode() in xml  # BT-25: the invoice it corrects
    assert "Cancellation of invoice" in text_of(pdf)
