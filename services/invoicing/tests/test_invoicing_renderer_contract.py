"""The invoice and credit-note renderer ports (:class:`~billing_invoicing.ports.PdfRendering`,
:class:`~billing_invoicing.ports.FacturxRendering`,
:class:`~billing_invoicing.ports.CreditNoteRendering`, all four methods of
:class:`~billing_invoicing.ports.InvoicePdfRendering`), one contract run against the in-memory
fake (``adapters/memory.py``) and WeasyPrint in a worker process (``adapters/pdf.py``): bytes
that a PDF reader opens, naming the document's number (a credit note also its invoice's); a
Factur-X PDF carries the XML it was given as ``factur-x.xml``; XML that is not EN 16931 CII is
refused."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pypdf
import pytest
from einvoice_cases import Case, cases
from facturx import get_xml_from_pdf  # type: ignore[import-untyped]

from billing_devtools.testing import eventually
from billing_invoicing.adapters.einvoice import cii_xml
from billing_invoicing.adapters.memory import InMemoryPdfRenderer
from billing_invoicing.adapters.pdf import PdfRenderer
from billing_invoicing.ports import InvoicePdfRendering


@pytest.fixture(scope="module", params=["memory", "weasyprint"])
async def renderer(request: pytest.FixtureRequest) -> AsyncIterator[InvoicePdfRendering]:
    if request.param == "memory":
        yield InMemoryPdfRenderer()
        return
    async with PdfRenderer(max_workers=1) as weasyprint:
        yield weasyprint


def _case(name: str) -> Case:
    return next(case for case in cases() if case.name == name)


def _text(pdf: bytes) -> str:
    assert pdf.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 1
    return "\n".join(page.extract_text() for page in reader.pages)


async def test_an_invoice_renders_as_a_pdf_naming_its_number(
    renderer: InvoicePdfRendering,
) -> None:
    invoice = _case("domestic").invoice
    assert invoice.number is not None

    text = _text(await renderer.render(invoice))

    assert invoice.number in text
    assert invoice.buyer.name in text


async def test_a_facturx_invoice_carries_the_xml_it_was_given(
    renderer: InvoicePdfRendering,
) -> None:
    case = _case("domestic")
    assert case.invoice.number is not None
    xml = cii_xml(case.document)

    pdf = await renderer.render_facturx(case.invoice, xml)

    assert case.invoice.number in _text(pdf)
    assert get_xml_from_pdf(pdf, check_xsd=False) == ("factur-x.xml", xml)


async def test_a_credit_note_names_itself_and_its_invoice(renderer: InvoicePdfRendering) -> None:
    case = _case("credit-note")
    assert case.note is not None
    assert case.invoice.number is not None

    plain = _text(await renderer.render_credit_note(case.invoice, case.note))
    xml = cii_xml(case.document)
    facturx = await renderer.render_credit_note_facturx(case.invoice, case.note, xml)

    for text in (plain, _text(facturx)):
        assert case.note.number in text
        assert case.invoice.number in text
    assert get_xml_from_pdf(facturx, check_xsd=False) == ("factur-x.xml", xml)


async def test_xml_that_is_not_en16931_cii_is_refused(renderer: InvoicePdfRendering) -> None:
    case = _case("credit-note")
    assert case.note is not None
    not_cii = b"<?xml version='1.0'?><Invoice><ID>1</ID></Invoice>"

    # the factur-x package's own error, whatever side raises it
    with pytest.raises(Exception, match=r"XSD|schema|XML"):
        await renderer.render_facturx(case.invoice, not_cii)
    with pytest.raises(Exception, match=r"XSD|schema|XML"):
        await renderer.render_credit_note_facturx(case.invoice, case.note, not_cii)


async def test_each_kind_of_rendering_survives_a_worker_that_died() -> None:
    # WeasyPrint only (the fake has no worker): a worker killed (out of memory) breaks the
    # pool; the next rendering, whichever method it is, replaces the pool and renders (only
    # ``render`` did; the others raised BrokenProcessPool until a plain ``render`` came)
    case = _case("credit-note")
    note = case.note
    assert note is not None
    xml = cii_xml(_case("domestic").document)
    async with PdfRenderer(max_workers=1) as weasyprint:
        renderings: list[Callable[[], Awaitable[bytes]]] = [
            lambda: weasyprint.render_facturx(_case("domestic").invoice, xml),
            lambda: weasyprint.render_credit_note(case.invoice, note),
        ]
        for rendering in renderings:
            pool = weasyprint._pool
            for pid in list(pool._processes):  # the worker, to kill
                os.kill(pid, signal.SIGKILL)

            async def broken(pool: Any = pool) -> bool:
                return bool(pool._broken)

            await eventually(broken, "the pool to see its worker die")

            assert (await rendering()).startswith(b"%PDF-")
