"""The invoice PDF: Jinja2 HTML rendered by WeasyPrint in a worker process.

Rendering an invoice takes a few hundred milliseconds of pure CPU, so it never runs on the
event loop: :class:`PdfRenderer` sends the invoice, as JSON, to a process pool and awaits the
bytes. :func:`render_invoice_pdf` is the module-level function the workers run.

The output is deterministic: the PDF's creation and modification dates are the invoice's issue
date (not the time of rendering), its file identifier is derived from the invoice id, and the
embedded font subsets are stamped with the issue date too (fontTools otherwise writes the current
time into each subset's ``head`` table). Rendering the same invoice again with the same
WeasyPrint, fontTools and fonts gives the same bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Self

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_decimal
from jinja2 import Environment, PackageLoader, StrictUndefined

from billing_invoicing.domain.einvoice import CreditNoteDocument
from billing_invoicing.domain.invoice import InvoiceDocument, period_bounds
from billing_schemas.money import format_amount
from billing_schemas.periods import month_label

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
"""Folder of ``invoice.html.j2`` and ``invoice.css``; the base URL the stylesheet resolves from."""

TEMPLATE = "invoice.html.j2"


@cache
def _environment() -> Environment:
    # Autoescape unconditionally: every template here is HTML and ``select_autoescape`` would
    # not recognise the ``.html.j2`` suffix. StrictUndefined turns a typo into an error instead
    # of a silently blank field on a legal document.
    return Environment(
        loader=PackageLoader("billing_invoicing", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        # An unknown language must not stop an invoice from being issued: fall back to English.
        return Locale.parse("en")


def long_date(day: date | None, language: str) -> str:
    """A date as people of ``language`` write it in full (en: "October 15, 2024"); "—" if unset."""
    if day is None:
        return "—"
    return str(format_date(day, "long", locale=_locale(language)))


def period_label(period: str, language: str) -> str:
    """A ``YYYY-MM`` billing period as month and year (en: "September 2024"); the same words as
    the invoice email (:func:`billing_schemas.periods.month_label`)."""
    return month_label(period, language)


def country_name(code: str, language: str) -> str:
    """An ISO 3166-1 alpha-2 country code as a name in ``language``; the code if unknown."""
    return str(_locale(language).territories.get(code, code))


def render_invoice_html(invoice: InvoiceDocument) -> str:
    """Render the invoice document as HTML (all invoice text autoescaped).

    Amounts are printed with :func:`billing_schemas.money.format_amount` in the invoice's
    language, rounded to the currency's minor units; dates, the period and country names in the
    same language (English if Babel does not know it). The labels are English for now.
    """

    # Babel wants "de_CH" where the invoice may say "de-CH"; unknown languages fall back to en.
    locale = _locale(invoice.language)

    def money(amount: Decimal) -> str:
        return format_amount(amount, invoice.currency, str(locale))

    def count(number: int) -> str:
        return str(format_decimal(number, locale=locale))

    def country(code: str) -> str:
        return country_name(code, invoice.language)

    template = _environment().get_template(TEMPLATE)
    return template.render(
        invoice=invoice,
        money=money,
        count=count,
        country=country,
        issue_date=long_date(invoice.issue_date, invoice.language),
        due_date=long_date(invoice.due_date, invoice.language),
        period=period_label(invoice.period, invoice.language),
    )


def _pdf_identifier(invoice: InvoiceDocument) -> bytes:
    # The PDF /ID pair: a permanent part from the invoice id (stable across re-renders) and a
    # content hash that WeasyPrint adds itself.
    return hashlib.sha256(invoice.invoice_id.encode()).hexdigest()[:32].encode()


@contextmanager
def _source_date_epoch(day: date) -> Iterator[None]:
    # fontTools stamps every font subset it writes with time.time(), unless SOURCE_DATE_EPOCH
    # (the reproducible-builds convention) is set. The variable is process-wide, which is fine
    # in a worker that renders one invoice at a time; it is restored afterwards.
    previous = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(int(datetime.combine(day, time(), UTC).timestamp()))
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = previous


PDF_A_3B = "pdf/a-3b"
"""WeasyPrint's PDF/A-3b variant: what a Factur-X/ZUGFeRD invoice must be to carry its XML."""


def render_invoice_pdf(invoice_json: str, pdf_variant: str | None = None) -> bytes:
    """Render an invoice, given as the JSON of :class:`Invoice`, to PDF bytes.

    Runs in a worker process (it is module-level so that it pickles by name). Only ``file:``
    URLs are fetched, and a missing stylesheet fails the rendering instead of printing an
    unstyled invoice. ``pdf_variant`` is WeasyPrint's (``PDF_A_3B`` for Factur-X).
    """
    # Imported here, not at module level: WeasyPrint loads Pango and fontconfig, which only the
    # worker processes need; the service process imports this module for PdfRenderer alone.
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    invoice = InvoiceDocument.model_validate_json(invoice_json)
    html = render_invoice_html(invoice)
    fetcher = URLFetcher(allowed_protocols=("file",), fail_on_errors=True)
    document = HTML(string=html, base_url=str(TEMPLATES_DIR), url_fetcher=fetcher)
    # A draft has no issue date yet; its period's first day keeps it reproducible all the same.
    stamp = invoice.issue_date or period_bounds(invoice.period)[0]
    with _source_date_epoch(stamp):
        pdf = document.write_pdf(pdf_identifier=_pdf_identifier(invoice), pdf_variant=pdf_variant)
    if not isinstance(pdf, bytes):  # write_pdf returns bytes when it is given no target
        msg = f"WeasyPrint returned {type(pdf).__name__}, expected bytes"
        raise TypeError(msg)
    return pdf


def render_facturx_pdf(invoice_json: str, xml: bytes) -> bytes:
    """Render an invoice as PDF/A-3b and embed its CII XML as ``factur-x.xml`` (Factur-X /
    ZUGFeRD, profile EN 16931): the invoice every customer can read, and its machine-readable
    twin. Runs in a worker process, like :func:`render_invoice_pdf`."""
    from billing_invoicing.adapters.einvoice import facturx_pdf

    invoice = InvoiceDocument.model_validate_json(invoice_json)
    pdf = render_invoice_pdf(invoice_json, PDF_A_3B)
    title = f"Invoice {invoice.number or invoice.invoice_id}"
    return facturx_pdf(pdf, xml, title=title, author=invoice.seller.name, lang=invoice.language)


CREDIT_NOTE_TEMPLATE = "credit_note.html.j2"


def render_credit_note_html(invoice: InvoiceDocument, note: CreditNoteDocument) -> str:
    """Render a credit note on ``invoice`` as HTML, in the invoice's language and currency."""
    locale = _locale(invoice.language)
    label = invoice.taxes[0].label if len(invoice.taxes) == 1 else "Tax"
    return (
        _environment()
        .get_template(CREDIT_NOTE_TEMPLATE)
        .render(
            invoice=invoice,
            note=note,
            money=lambda amount: format_amount(amount, invoice.currency, str(locale)),
            country=lambda code: country_name(code, invoice.language),
            issue_date=long_date(note.issue_date, invoice.language),
            invoice_date=long_date(invoice.issue_date, invoice.language),
            tax_label=label,
        )
    )


def render_credit_note_facturx_pdf(
    invoice_json: str, note: CreditNoteDocument, xml: bytes
) -> bytes:
    """A credit note as PDF/A-3b carrying its CII XML (Factur-X, type 381). Runs in a worker
    process, like :func:`render_invoice_pdf`; dated by the credit note for reproducible
    rendering (the embedding stamps its own time, see ``adapters/einvoice_renderer.py``)."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    from billing_invoicing.adapters.einvoice import facturx_pdf

    invoice = InvoiceDocument.model_validate_json(invoice_json)
    fetcher = URLFetcher(allowed_protocols=("file",), fail_on_errors=True)
    html = render_credit_note_html(invoice, note)
    document = HTML(string=html, base_url=str(TEMPLATES_DIR), url_fetcher=fetcher)
    identifier = hashlib.sha256(note.number.encode()).hexdigest()[:32].encode()
    with _source_date_epoch(note.issue_date):
        pdf = document.write_pdf(pdf_identifier=identifier, pdf_variant=PDF_A_3B)
    if not isinstance(pdf, bytes):
        msg = f"WeasyPrint returned {type(pdf).__name__}, expected bytes"
        raise TypeError(msg)
    title = f"Credit note {note.number}"
    return facturx_pdf(pdf, xml, title=title, author=invoice.seller.name, lang=invoice.language)


def _warm_worker() -> None:
    # Importing WeasyPrint (Pango, fontconfig, cffi) takes about a second; pay it when the
    # worker starts rather than on the first invoice. The template is compiled here too.
    import weasyprint  # noqa: F401

    _environment().get_template(TEMPLATE)


def _ready() -> bool:
    return True


class PdfRenderer:
    """Renders invoice PDFs in a pool of worker processes, off the event loop.

    Workers are spawned (not forked: forking a process that runs an event loop and holds
    sockets is unsafe) and import WeasyPrint when they start. Use as an async context manager,
    or call :meth:`close` when done.
    """

    def __init__(self, max_workers: int = 1) -> None:
        if max_workers < 1:
            msg = f"max_workers must be at least 1, not {max_workers}"
            raise ValueError(msg)
        self._max_workers = max_workers
        self._pool = self._new_pool()
        self._closed = False

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._max_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm_worker,
        )

    async def start(self) -> None:
        """Start the workers now, so that the first invoice does not wait for them."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._pool, _ready) for _ in range(self._max_workers))
        )

    async def render(self, invoice: InvoiceDocument) -> bytes:
        """Render ``invoice`` to PDF bytes in a worker process.

        If a worker died (killed, out of memory), the pool is replaced and the rendering is
        tried once more: rendering has no side effects, so repeating it is safe.
        """
        if self._closed:
            msg = "PdfRenderer is closed"
            raise RuntimeError(msg)
        loop = asyncio.get_running_loop()
        payload = invoice.model_dump_json()
        pool = self._pool
        try:
            return await loop.run_in_executor(pool, render_invoice_pdf, payload)
        except BrokenProcessPool:
            # Concurrent renderings all see the same broken pool; only the first replaces it.
            if self._pool is pool:
                self._pool = self._new_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            return await loop.run_in_executor(self._pool, render_invoice_pdf, payload)

    async def render_facturx(self, invoice: InvoiceDocument, xml: bytes) -> bytes:
        """Render ``invoice`` as a Factur-X PDF carrying ``xml`` (its CII), in a worker."""
        if self._closed:
            msg = "PdfRenderer is closed"
            raise RuntimeError(msg)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, render_facturx_pdf, invoice.model_dump_json(), xml
        )

    async def render_credit_note_facturx(
        self, invoice: InvoiceDocument, note: CreditNoteDocument, xml: bytes
    ) -> bytes:
        """Render a credit note as a Factur-X PDF carrying ``xml``, in a worker."""
        if self._closed:
            msg = "PdfRenderer is closed"
            raise RuntimeError(msg)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, render_credit_note_facturx_pdf, invoice.model_dump_json(), note, xml
        )

    def close(self) -> None:
        """Stop the workers: renderings in progress finish, queued ones are cancelled."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def aclose(self) -> None:
        """:meth:`close`, without blocking the event loop while workers finish."""
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
