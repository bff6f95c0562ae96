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
import io
import multiprocessing
import os
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from babel import Locale
from babel.dates import format_date, format_interval
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from billing_invoicing.domain.einvoice import CreditNoteDocument
from billing_invoicing.domain.invoice import InvoiceDocument, period_bounds, printed_sections
from billing_schemas.money import format_amount, minor_units
from billing_schemas.periods import babel_locale, month_label

if TYPE_CHECKING:
    from jinja2 import Environment
    from markupsafe import Markup

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
"""Folder of ``invoice.html.j2`` and ``invoice.css``; the base URL the stylesheet resolves from."""

TEMPLATE = "invoice.html.j2"

LOCALE_DIR = TEMPLATES_DIR / "locale"
"""The documents' translations: ``<language>/LC_MESSAGES/documents.po`` (gettext catalogs)."""
MESSAGES_DOMAIN = "documents"


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for translation only"
    """Mark a label translated later, so that message extraction finds it."""
    return message


PAGE_COUNTER = N_("Page %(page)s of %(pages)s")
_TAX_WORDS = (N_("VAT"), N_("reverse charge"), N_("not subject"))
LEGAL_MENTIONS = (
    N_(
        "Reverse charge: VAT to be accounted for by the recipient "
        "(Article 196, Council Directive 2006/112/EC)."
    ),
    N_(
        "Not subject to VAT in the seller's country: the place of supply is the recipient's "
        "country (Article 44, Council Directive 2006/112/EC)."
    ),
)
"""The tax mentions an invoice may carry (``domain/tax.py``'s, written out for message
extraction; a test checks they are the same): printed in the invoice's language."""


def _locale(language: str) -> Locale:
    # An unknown language must not stop an invoice from being issued: English.
    return babel_locale(language)


@cache
def translations(language: str) -> NullTranslations:
    """The document labels in ``language`` (``de-CH`` falls back to ``de``); English, the
    labels as written in the templates, when there is no catalog for it.

    The catalogs are gettext ``.po`` files read with Babel and compiled in memory once per
    process (fuzzy entries are left out, so an unchecked translation prints in English).
    """
    locale = _locale(language)
    for name in (str(locale), locale.language):
        path = LOCALE_DIR / name / "LC_MESSAGES" / f"{MESSAGES_DOMAIN}.po"
        if path.is_file():
            with path.open("rb") as po:
                catalog = read_po(po, locale=name, domain=MESSAGES_DOMAIN)
            compiled = io.BytesIO()
            write_mo(compiled, catalog)
            compiled.seek(0)
            return Translations(compiled, domain=MESSAGES_DOMAIN)
    return NullTranslations()


@cache
def _environment(language: str = "en") -> Environment:
    # Autoescape unconditionally: every template here is HTML and ``select_autoescape`` would
    # not recognise the ``.html.j2`` suffix. StrictUndefined turns a typo into an error instead
    # of a silently blank field on a legal document. Labels are gettext messages ("newstyle":
    # ``_("Invoice %(number)s", number=...)``, the values escaped, the message trusted).
    # Jinja2 is imported here, where a document is rendered (in the PDF pool's workers), not
    # by the ``billing`` commands that only wire the pool (issue 11).
    from jinja2 import Environment, PackageLoader, StrictUndefined

    environment = Environment(
        loader=PackageLoader("billing_invoicing", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    environment.install_gettext_translations(  # type: ignore[attr-defined]
        translations(language), newstyle=True
    )
    return environment


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def page_counter(language: str) -> Markup:
    """The CSS ``content`` of the page counter in ``language``: ``"Page " counter(page) " of "
    counter(pages)``."""
    parts = re.split(r"(%\(pages?\)s)", translations(language).gettext(PAGE_COUNTER))
    counters = {"%(page)s": "counter(page)", "%(pages)s": "counter(pages)"}
    # the text is quoted and escaped as CSS strings: safe inside the template's <style>
    css = " ".join(counters.get(part) or _css_string(part) for part in parts if part)
    from markupsafe import Markup

    return Markup(css)  # noqa: S704


def tax_label(label: str, language: str) -> str:
    """A tax label of the invoice document (``VAT 19% (DE)``, ``VAT 0% (reverse charge)``:
    ``domain/tax.py``) in ``language``."""
    gettext = translations(language).gettext
    name, space, rest = label.partition(" ")
    if name == "VAT":
        name = gettext("VAT")
    for words in ("reverse charge", "not subject"):
        rest = rest.replace(f"({words})", f"({gettext(words)})")
    return f"{name}{space}{rest}"


def tax_mention(mention: str | None, language: str) -> str | None:
    """The invoice's legal tax mention in ``language`` (as issued if it has no translation)."""
    return None if mention is None else translations(language).gettext(mention)


def _document_context(invoice: InvoiceDocument) -> dict[str, object]:
    """What the invoice and the credit-note templates both format in the invoice's language."""
    language = invoice.language
    locale = str(_locale(language))

    def money(amount: Decimal) -> str:
        return format_amount(amount, invoice.currency, locale)

    label: Callable[[str], str] = lambda text: tax_label(text, language)  # noqa: E731
    return {
        "money": money,
        "country": lambda code: country_name(code, language),
        "tax_label": label,
        "tax_mention": tax_mention(invoice.tax_mention, language),
        "page_counter": page_counter(language),
    }


def long_date(day: date | None, language: str) -> str:
    """A date as people of ``language`` write it in full (en: "October 15, 2024"); "—" if unset."""
    if day is None:
        return "—"
    return str(format_date(day, "long", locale=_locale(language)))


def days_between(first: date, last: date, language: str) -> str:
    """The days from ``first`` to ``last`` (inclusive) as ``language`` writes a date interval
    (CLDR, through Babel; en: "Sep 10 - 30, 2024", de: "10.-30. Sept. 2024", with en dashes)."""
    return str(format_interval(first, last, "yMMMd", locale=_locale(language)))


def period_label(period: str, language: str) -> str:
    """A ``YYYY-MM`` billing period as month and year (en: "September 2024"); the same words as
    the invoice email (:func:`billing_schemas.periods.month_label`)."""
    return month_label(period, language)


def country_name(code: str, language: str) -> str:
    """An ISO 3166-1 alpha-2 country code as a name in ``language``; the code if unknown."""
    return str(_locale(language).territories.get(code, code))


def render_invoice_html(invoice: InvoiceDocument) -> str:
    """Render the invoice document as HTML (all invoice text autoescaped).

    Everything is in the invoice's (the customer's) language: the labels (gettext catalogs,
    English where there is none), amounts with :func:`billing_schemas.money.format_amount`
    rounded to the currency's minor units, dates, the period, country names. The lines are
    printed by section (:func:`~billing_invoicing.domain.invoice.printed_sections`).
    """

    # Babel wants "de_CH" where the invoice may say "de-CH"; unknown languages fall back to en.
    locale = _locale(invoice.language)
    context = _document_context(invoice)

    def count(number: int) -> str:
        return str(format_decimal(number, locale=locale))

    def month(period: str) -> str:
        return period_label(period, invoice.language)

    money = context["money"]
    assert callable(money)
    smallest = Decimal(1).scaleb(-minor_units(invoice.currency))
    template = _environment(str(locale)).get_template(TEMPLATE)
    return template.render(
        invoice=invoice,
        sections=printed_sections(invoice),
        count=count,
        month=month,
        days_between=lambda first, last: days_between(first, last, invoice.language),
        prorated_included=any(line.prorated for line in invoice.lines),
        small_unit=money(smallest),
        issue_date=long_date(invoice.issue_date, invoice.language),
        due_date=long_date(invoice.due_date, invoice.language),
        period=period_label(invoice.period, invoice.language),
        **context,
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
    title = translations(invoice.language).gettext("Invoice %(number)s") % {
        "number": invoice.number or invoice.invoice_id
    }
    return facturx_pdf(pdf, xml, title=title, author=invoice.seller.name, lang=invoice.language)


CREDIT_NOTE_TEMPLATE = "credit_note.html.j2"


def render_credit_note_html(invoice: InvoiceDocument, note: CreditNoteDocument) -> str:
    """Render a credit note on ``invoice`` as HTML, in the invoice's language and currency."""
    language = invoice.language
    gettext = translations(language).gettext
    label = tax_label(invoice.taxes[0].label, language) if len(invoice.taxes) == 1 else None
    context = _document_context(invoice) | {"tax_label": label or gettext("Tax")}
    return (
        _environment(str(_locale(language)))
        .get_template(CREDIT_NOTE_TEMPLATE)
        .render(
            invoice=invoice,
            note=note,
            issue_date=long_date(note.issue_date, language),
            invoice_date=long_date(invoice.issue_date, language),
            **context,
        )
    )


def render_credit_note_pdf(
    invoice_json: str, note: CreditNoteDocument, pdf_variant: str | None = None
) -> bytes:
    """Render a credit note on the invoice given as JSON to PDF bytes, dated by the credit note
    for reproducible rendering. Runs in a worker process, like :func:`render_invoice_pdf`."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    invoice = InvoiceDocument.model_validate_json(invoice_json)
    fetcher = URLFetcher(allowed_protocols=("file",), fail_on_errors=True)
    html = render_credit_note_html(invoice, note)
    document = HTML(string=html, base_url=str(TEMPLATES_DIR), url_fetcher=fetcher)
    identifier = hashlib.sha256(note.number.encode()).hexdigest()[:32].encode()
    with _source_date_epoch(note.issue_date):
        pdf = document.write_pdf(pdf_identifier=identifier, pdf_variant=pdf_variant)
    if not isinstance(pdf, bytes):
        msg = f"WeasyPrint returned {type(pdf).__name__}, expected bytes"
        raise TypeError(msg)
    return pdf


def render_credit_note_facturx_pdf(
    invoice_json: str, note: CreditNoteDocument, xml: bytes
) -> bytes:
    """A credit note as PDF/A-3b carrying its CII XML (Factur-X, type 381). Runs in a worker
    process, like :func:`render_invoice_pdf` (the embedding stamps its own time, see
    ``adapters/einvoice_renderer.py``)."""
    from billing_invoicing.adapters.einvoice import facturx_pdf

    invoice = InvoiceDocument.model_validate_json(invoice_json)
    pdf = render_credit_note_pdf(invoice_json, note, PDF_A_3B)
    title = translations(invoice.language).gettext("Credit note %(number)s") % {
        "number": note.number
    }
    return facturx_pdf(pdf, xml, title=title, author=invoice.seller.name, lang=invoice.language)


def _watch_parent(parent: int, every: float = 0.5) -> None:
    """End this worker when the process that started it is gone (SIGKILLed, out of memory):
    a pool worker is not told, and would otherwise stay behind, orphaned, for good."""
    import time as clock

    while os.getppid() == parent:
        clock.sleep(every)
    os._exit(0)


def _warm_worker(parent: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
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
            initargs=(os.getpid(),),
        )

    async def start(self) -> None:
        """Start the workers now, so that the first invoice does not wait for them."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._pool, _ready) for _ in range(self._max_workers))
        )

    async def _run(self, work: Callable[..., bytes], *args: object) -> bytes:
        """Run ``work(*args)`` in a worker process.

        If a worker died (killed, out of memory), the pool is replaced and the work is tried
        once more: rendering has no side effects, so repeating it is safe.
        """
        if self._closed:
            msg = "PdfRenderer is closed"
            raise RuntimeError(msg)
        loop = asyncio.get_running_loop()
        pool = self._pool
        try:
            return await loop.run_in_executor(pool, work, *args)
        except BrokenProcessPool:
            # Concurrent renderings all see the same broken pool; only the first replaces it.
            if self._pool is pool:
                self._pool = self._new_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            return await loop.run_in_executor(self._pool, work, *args)

    async def render(self, invoice: InvoiceDocument) -> bytes:
        """Render ``invoice`` to PDF bytes in a worker process (a dead worker is replaced)."""
        return await self._run(render_invoice_pdf, invoice.model_dump_json())

    async def render_facturx(self, invoice: InvoiceDocument, xml: bytes) -> bytes:
        """Render ``invoice`` as a Factur-X PDF carrying ``xml`` (its CII), in a worker."""
        return await self._run(render_facturx_pdf, invoice.model_dump_json(), xml)

    async def render_credit_note(self, invoice: InvoiceDocument, note: CreditNoteDocument) -> bytes:
        """Render a credit note on ``invoice`` (the plain PDF), in a worker."""
        return await self._run(render_credit_note_pdf, invoice.model_dump_json(), note)

    async def render_credit_note_facturx(
        self, invoice: InvoiceDocument, note: CreditNoteDocument, xml: bytes
    ) -> bytes:
        """Render a credit note as a Factur-X PDF carrying ``xml``, in a worker."""
        return await self._run(render_credit_note_facturx_pdf, invoice.model_dump_json(), note, xml)

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
