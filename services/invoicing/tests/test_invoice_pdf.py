"""The invoice PDF: what a customer reads on it, and where it is kept.

Rendering goes through the real worker process (``PdfRenderer``) and the text is read back
from the PDF with pypdf. The store's behaviour is one contract, run against the in-memory fake
and, as an integration test, against the real MongoDB-wire database.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pypdf
import pytest
from gridfs import AsyncGridFSBucket
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import PaymentMethod
from billing_invoicing.adapters.documents import (
    InvoicePdfCorruptError,
    InvoicePdfNotFoundError,
    InvoicePdfStore,
    pdf_file_id,
)
from billing_invoicing.adapters.memory import InMemoryInvoicePdfStore
from billing_invoicing.adapters.pdf import PdfRenderer, render_invoice_html
from billing_invoicing.domain.invoice import InvoiceDocument, InvoiceLine, InvoiceStatus, Party
from billing_schemas.documents import INVOICE_PDF_BUCKET, INVOICE_PDF_FILES
from billing_schemas.money import format_amount

NUMBER = "ACME-2024-000042"

PdfStore = InvoicePdfStore | InMemoryInvoicePdfStore


def line(description: str, charge_count: int, amount: str) -> InvoiceLine:
    return InvoiceLine(
        description=description,
        provider="aws",
        service_name=description.removesuffix(" (aws)"),
        charge_count=charge_count,
        cost=Decimal(amount) * Decimal("0.8"),
        amount_exact=Decimal(amount),
        amount=Decimal(amount),
    )


def make_invoice(*, buyer_name: str = "Société Générale de Test SAS") -> InvoiceDocument:
    """A finalized EUR invoice from a German seller to a French buyer, in French."""
    lines = [
        line("Amazon Elastic Compute Cloud (aws)", 12840, "1034.56"),
        line("Amazon Simple Storage Service (aws)", 311, "200.00"),
    ]
    subtotal = sum((item.amount for item in lines), Decimal(0))
    tax = Decimal("0.00")
    return InvoiceDocument(
        invoice_id="cust-fr-1:2024-09",
        customer_id="cust-fr-1",
        invoicing_entity_id="acme-de",
        period="2024-09",
        currency="EUR",
        language="fr",
        seller=Party(
            name="ACME Cloud Services GmbH",
            address_lines=["Friedrichstraße 123", "10117 Berlin"],
            country="DE",
            vat_id="DE123456789",
            email="billing@acme-cloud.example",
        ),
        buyer=Party(
            name=buyer_name,
            address_lines=["12 rue de la Paix", "75002 Paris"],
            country="FR",
            vat_id="FR12345678901",
        ),
        lines=lines,
        subtotal=subtotal,
        tax=tax,
        total=subtotal + tax,
        outstanding=subtotal + tax,
        payment_methods=[
            PaymentMethod(kind="SEPA bank transfer", details="IBAN DE89 3704 0044 0532 0130 00"),
        ],
        number=NUMBER,
        status=InvoiceStatus.FINALIZED,
        issue_date=date(2024, 10, 1),
        due_date=date(2024, 10, 31),
    )


def pdf_text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


@pytest.fixture(scope="module")
async def renderer() -> AsyncIterator[PdfRenderer]:
    async with PdfRenderer(max_workers=1) as pdf_renderer:
        yield pdf_renderer


@pytest.fixture(scope="module")
async def sample_pdf(renderer: PdfRenderer) -> bytes:
    return await renderer.render(make_invoice())


async def test_pdf_shows_what_the_customer_must_read(sample_pdf: bytes) -> None:
    text = pdf_text(sample_pdf)

    assert sample_pdf.startswith(b"%PDF-")
    assert len(pypdf.PdfReader(io.BytesIO(sample_pdf)).pages) == 1
    assert NUMBER in text
    assert "Société Générale de Test SAS" in text
    # French formatting: narrow no-break space between thousands, no-break space before €.
    assert format_amount(Decimal("1234.56"), "EUR", "fr") == "1\u202f234,56\xa0€"
    # in the customer's language, every label (issue 14 item 8: they were English)
    assert "Total 1\u202f234,56\xa0€" in text
    assert "Date d'échéance 31 octobre 2024" in text
    assert "Période de facturation septembre 2024" in text
    assert f"Référence : {NUMBER}" in text
    assert "Page 1 sur 1" in text


async def test_pdf_metadata_dates_are_the_issue_date(sample_pdf: bytes) -> None:
    metadata = pypdf.PdfReader(io.BytesIO(sample_pdf)).metadata

    assert metadata is not None
    assert metadata.title == f"Facture {NUMBER}"
    assert metadata.creation_date == datetime(2024, 10, 1)  # noqa: DTZ001 - PDF date has no zone
    assert metadata.modification_date == datetime(2024, 10, 1)  # noqa: DTZ001


async def test_rendering_again_in_another_worker_gives_the_same_bytes(sample_pdf: bytes) -> None:
    # A fresh worker process, later: PDF dates and embedded font subsets must depend on the
    # invoice only, not on the clock or the process.
    async with PdfRenderer() as other:
        again = await other.render(make_invoice())

    assert again == sample_pdf


def test_html_escapes_the_customer_name() -> None:
    html = render_invoice_html(make_invoice(buyer_name="<script>alert('x')</script> Ltd"))

    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Ltd" in html


class PdfStoreContract:
    """The behaviour every invoice PDF store has; subclasses provide the ``store`` fixture."""

    pdf = bytes(range(256)) * 1200  # 300 KiB

    async def test_saving_twice_keeps_one_file(self, store: PdfStore) -> None:
        first = await store.save(invoice_id="c1:2024-09", number=NUMBER, pdf=self.pdf)
        second = await store.save(invoice_id="c1:2024-09", number=NUMBER, pdf=b"%PDF-other")

        assert second == first
        assert first.size == len(self.pdf)
        assert await store.find("c1:2024-09") == first
        assert await store.load(first.file_id) == self.pdf

    async def test_load_returns_identical_bytes(self, store: PdfStore) -> None:
        stored = await store.save(invoice_id="c2:2024-09", number="N-1", pdf=self.pdf)

        assert await store.load(stored.file_id) == self.pdf

    async def test_unknown_invoice_and_file(self, store: PdfStore) -> None:
        assert await store.find("nobody:2024-09") is None
        with pytest.raises(InvoicePdfNotFoundError):
            await store.load("0123456789abcdef01234567")
        with pytest.raises(InvoicePdfNotFoundError):
            await store.load("not-an-object-id")


class TestInMemoryPdfStore(PdfStoreContract):
    @pytest.fixture
    def store(self) -> PdfStore:
        return InMemoryInvoicePdfStore()


@pytest.mark.integration
class TestMongoPdfStore(PdfStoreContract):
    @pytest.fixture
    def store(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> PdfStore:
        return InvoicePdfStore(mongo_db)

    async def test_saving_twice_writes_one_file_under_the_invoices_id(
        self, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        store = InvoicePdfStore(mongo_db)

        first = await store.save(invoice_id="c1:2024-09", number=NUMBER, pdf=self.pdf)
        second = await store.save(invoice_id="c1:2024-09", number=NUMBER, pdf=self.pdf)

        files = await mongo_db[INVOICE_PDF_FILES].find({}, {"data": 0}).to_list()
        assert second.file_id == first.file_id == pdf_file_id("c1:2024-09")
        assert [f["_id"] for f in files] == [first.file_id]
        assert files[0]["metadata"]["filename"] == f"{NUMBER}.pdf"
        assert files[0]["sha256"] == first.sha256

    async def test_concurrent_saves_agree_on_one_file(
        self, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        # Separate store objects, as in separate service instances racing on one invoice.
        stores = [InvoicePdfStore(mongo_db) for _ in range(4)]

        results = await asyncio.gather(
            *(s.save(invoice_id="c3:2024-09", number="N-3", pdf=self.pdf) for s in stores)
        )

        assert len({r.file_id for r in results}) == 1
        assert await mongo_db[INVOICE_PDF_FILES].count_documents({}) == 1
        assert await stores[1].load(results[0].file_id) == self.pdf

    async def test_altered_bytes_are_refused(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> None:
        store = InvoicePdfStore(mongo_db)
        stored = await store.save(invoice_id="c4:2024-09", number="N-4", pdf=self.pdf)
        await mongo_db[INVOICE_PDF_FILES].update_one(
            {"_id": stored.file_id}, {"$set": {"data": b"%PDF-forged"}}
        )

        with pytest.raises(InvoicePdfCorruptError):
            await store.load(stored.file_id)

    async def test_a_pdf_stored_in_gridfs_by_an_earlier_version_still_loads(
        self, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        bucket = AsyncGridFSBucket(mongo_db, bucket_name=INVOICE_PDF_BUCKET)
        file_id = await bucket.upload_from_stream("OLD-1.pdf", self.pdf)

        assert await InvoicePdfStore(mongo_db).load(str(file_id)) == self.pdf
