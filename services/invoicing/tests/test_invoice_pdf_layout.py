"""The invoice PDF as a person reads it (issue 18 and the demo's defects).

- A prorated subscription says why it is not the whole fee: each span's dates and its days of
  the period, under its label, in the customer's language; so does the included infrastructure
  the plans bring. The span is data on the line, not parsed from its description.
- A section heading never ends a page: it stays with its first line.
"""

from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal
from typing import Any

import pypdf
import pytest
from einvoice_cases import customer, finalized

from billing_invoicing.adapters.pdf import render_invoice_html, render_invoice_pdf
from billing_invoicing.domain.invoice import (
    ChargeGroup,
    InvoiceDocument,
    InvoiceLine,
    LineKind,
    with_credit_applied,
)

D = Decimal


def _usage(count: int) -> list[ChargeGroup]:
    return [
        ChargeGroup(
            provider="AWS",
            service_name=f"Service {i:02d}",
            charge_count=10 + i,
            cost=D(0),
            price=D(f"{3 + i * 7}.37"),
        )
        for i in range(count)
    ]


def _invoice(
    subscriptions: list[dict[str, Any]], language: str = "en", usage: int = 1
) -> InvoiceDocument:
    buyer = customer(f"prorated-{language}", "DE", language=language, subscriptions=subscriptions)
    return finalized(buyer, _usage(usage), 2)


STARTED_ON_THE_10TH = [{"plan": "business", "start": "2024-09-10"}]
"""Like the demo's Contoso: Business (500.00, 400.00 included) from 2024-09-10, 21 of 30 days."""


def _subscription_lines(invoice: InvoiceDocument) -> list[InvoiceLine]:
    return [line for line in invoice.lines if line.kind is LineKind.SUBSCRIPTION]


def test_a_prorated_subscription_line_carries_its_span() -> None:
    (line,) = _subscription_lines(_invoice(STARTED_ON_THE_10TH))

    assert (line.first_day, line.last_day) == (date(2024, 9, 10), date(2024, 9, 30))
    assert (line.days, line.period_days, line.prorated) == (21, 30, True)
    assert line.amount == D("350.00")  # 500.00 x 21/30


def test_a_whole_month_is_not_prorated() -> None:
    invoice = _invoice([{"plan": "business", "start": "2024-01-01"}])
    (line,) = _subscription_lines(invoice)

    assert (line.days, line.period_days, line.prorated) == (30, 30, False)
    html = render_invoice_html(invoice)
    assert "Business subscription" in html
    assert "of 30 days" not in html


def test_lines_stored_before_the_span_existed_still_load() -> None:
    stored = _invoice(STARTED_ON_THE_10TH).model_dump(mode="json")
    for line in stored["lines"]:
        for field in ("first_day", "last_day", "days", "period_days"):
            del line[field]

    (line,) = _subscription_lines(InvoiceDocument.model_validate(stored))
    assert (line.first_day, line.days, line.prorated) == (None, None, False)
    render_invoice_html(InvoiceDocument.model_validate(stored))  # prints without a span


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize(
    ("language", "span", "included"),
    [
        ("en", "Sep 10 \u2013 30, 2024 · 21 of 30 days", "included in your plans for the days"),
        ("de", "10.\u201330. Sept. 2024 · 21 von 30 Tagen", "in Ihren Tarifen für die Tage"),
        ("fr", "10\u201330 sept. 2024 · 21 jours sur 30", "inclus dans vos forfaits"),
    ],
)
def test_the_pdf_says_why_a_prorated_fee_is_not_the_whole_fee(
    language: str, span: str, included: str
) -> None:
    invoice = _invoice(STARTED_ON_THE_10TH, language, usage=3)
    # Babel separates the interval with thin and no-break spaces: compare as a reader would
    text = " ".join(
        page.extract_text()
        for page in pypdf.PdfReader(io.BytesIO(render_invoice_pdf(invoice.model_dump_json()))).pages
    )
    text = re.sub(r"[\s\u2009\u202f\u00a0]+", " ", text)

    assert span.replace("\u2009", " ") in text
    assert included in text
    # what the plans include (400.00 x 21/30) is the amount the netting line explains
    assert invoice.netting is not None
    assert invoice.netting.included == D("280.00")


def test_a_quantity_change_prints_one_line_per_span_with_its_days() -> None:
    subscriptions = [
        {
            "plan": "business",
            "start": "2024-09-10",
            "end": "2024-09-25",
            "quantity": 3,
            "quantity_changes": [{"effective_from": "2024-09-20", "quantity": 5}],
        }
    ]
    invoice = _invoice(subscriptions)
    html = _text(render_invoice_html(invoice))

    spans = [(line.quantity, line.days) for line in _subscription_lines(invoice)]
    assert spans == [(3, 10), (5, 5)]
    assert re.search("Business subscription \u00d7 3 Sep 10\\W+19, 2024 · 10 of 30 days", html)
    assert re.search("Business subscription \u00d7 5 Sep 20\\W+24, 2024 · 5 of 30 days", html)


def test_an_invoice_settled_by_credit_says_so_in_the_customers_language() -> None:
    # a block of English text on a German invoice; 350.00 + 19% VAT = 416.50, all of it credit
    invoice = _invoice(STARTED_ON_THE_10TH, "de", usage=3)
    html = _text(render_invoice_html(with_credit_applied(invoice, invoice.total)))

    assert "Nichts zu zahlen" in html
    assert "Das Guthaben auf Ihrem Konto ( 416,50 € ) begleicht diese Rechnung." in html
    assert "Nothing to pay" not in html
    assert "settles" not in html


# --- section headings at a page's end ----------------------------------------------------------

SECTION_HEADINGS = {"Subscriptions", "Cloud usage", "Included cloud infrastructure"}


FOOTER = "Cumulus Cloud Resellers GmbH \u00b7 "


def _pages(pdf: bytes) -> list[list[str]]:
    """Each page's text lines, the running footer (seller and page counter) left out."""
    pages = []
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        lines = [line.strip() for line in page.extract_text().splitlines() if line.strip()]
        # the footer is the page's last text: the seller's name, a dot, its address...
        footer = max(i for i, line in enumerate(lines) if line.startswith(FOOTER))
        pages.append(lines[:footer])
    return pages


def test_a_section_heading_never_ends_a_page() -> None:
    # from 13 to 17 usage lines the page break moves across the "Included cloud infrastructure"
    # heading (the demo's September invoice had it as page 1's last row, its line on page 2)
    headings_pushed_over = 0
    for usage in range(13, 18):
        invoice = _invoice(STARTED_ON_THE_10TH, usage=usage)
        pages = _pages(render_invoice_pdf(invoice.model_dump_json()))
        assert len(pages) == 2
        assert pages[0][-1] not in SECTION_HEADINGS, (usage, pages[0][-3:])
        # the next page repeats the column headings, then the section heading leads its line
        if pages[1][1] in SECTION_HEADINGS:
            headings_pushed_over += 1
            assert pages[1][2].startswith(("Included cloud infrastructure (plans)", "Service"))
    assert headings_pushed_over  # the range did put a heading at the page break
