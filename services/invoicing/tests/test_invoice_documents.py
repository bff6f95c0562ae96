"""Issue 14 item 8: the invoice a reseller can send back.

- The PDF is in the customer's language (en, de, fr), every label: the gettext catalogs hold a
  translation of every label the templates and the renderer use.
- Purchases, unused commitments, credits, refunds and corrections are their own lines, labelled
  by kind, never folded into a service's usage line.
- Cloud lines under half a cent are printed as one line per section, and the printed lines
  still add up to the subtotal.
"""

from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import jinja2.ext
import pypdf
import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po
from einvoice_cases import customer, finalized
from invoicing_test_support import rated

from billing_invoicing.adapters import pdf
from billing_invoicing.adapters.invoice_repo import charge_amounts
from billing_invoicing.adapters.pdf import render_credit_note_html, render_invoice_html
from billing_invoicing.domain.einvoice import CreditNoteDocument
from billing_invoicing.domain.invoice import (
    ChargeGroup,
    ChargeKind,
    InvoiceDocument,
    Section,
    charge_kind,
    printed_sections,
)
from billing_invoicing.domain.model import DraftSums, charge_groups
from billing_invoicing.domain.tax import OUTSIDE_SCOPE_MENTION, REVERSE_CHARGE_MENTION
from billing_schemas.events import ChargeCategory, LineType, RatedCharge

D = Decimal
PACKAGE = Path(pdf.__file__).resolve().parents[1]
LANGUAGES = ("de", "fr")


# --- kinds of charges ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "line_type", "charge_class", "kind"),
    [
        (ChargeCategory.USAGE, LineType.ON_DEMAND, None, ChargeKind.USAGE),
        (ChargeCategory.USAGE, LineType.COMMITMENT_COVERED, None, ChargeKind.USAGE),
        (ChargeCategory.USAGE, LineType.COMMITMENT_NEGATION, None, ChargeKind.USAGE),
        # AWS RIFee / SavingsPlanUpfrontFee, FOCUS Purchase
        (ChargeCategory.PURCHASE, LineType.COMMITMENT_FEE, None, ChargeKind.PURCHASE),
        # an Azure Marketplace purchase
        (ChargeCategory.PURCHASE, LineType.OTHER, None, ChargeKind.PURCHASE),
        # FOCUS Usage with CommitmentDiscountStatus Unused, Azure UnusedReservation
        (ChargeCategory.USAGE, LineType.COMMITMENT_FEE, None, ChargeKind.UNUSED_COMMITMENT),
        (ChargeCategory.CREDIT, LineType.CREDIT, None, ChargeKind.CREDIT),
        (ChargeCategory.CREDIT, LineType.REFUND, None, ChargeKind.REFUND),
        (ChargeCategory.CREDIT, LineType.DISCOUNT, None, ChargeKind.DISCOUNT),
        (ChargeCategory.TAX, LineType.TAX, None, ChargeKind.TAX),
        (ChargeCategory.ADJUSTMENT, LineType.ADJUSTMENT, None, ChargeKind.ADJUSTMENT),
        # FOCUS ChargeClass Correction, a restated bill's reversal, a re-rating
        (ChargeCategory.USAGE, LineType.ON_DEMAND, "correction", ChargeKind.CORRECTION),
        (ChargeCategory.PURCHASE, LineType.COMMITMENT_FEE, "correction", ChargeKind.CORRECTION),
    ],
)
def test_each_charge_has_a_kind(
    category: ChargeCategory, line_type: LineType, charge_class: str | None, kind: ChargeKind
) -> None:
    assert charge_kind(category, line_type, charge_class) is kind


def _charge(
    charge_id: str,
    price: str,
    category: ChargeCategory = ChargeCategory.USAGE,
    line_type: LineType = LineType.ON_DEMAND,
    *,
    correction: bool = False,
) -> RatedCharge:
    charge = rated(charge_id, service="Azure Blob Storage", price=price)
    return charge.model_copy(
        update={
            "provider": "Azure",
            "charge_category": category,
            "line_type": line_type,
            "charge_class": "correction" if correction else None,
        }
    )


def test_purchases_credits_and_corrections_are_not_folded_into_usage() -> None:
    # Issue 14 item 8: "Azure Blob Storage, 2 lines, 487.30" held a reservation bought for
    # 361.00, an unused commitment, a credit and a correction. Counted as the draft ledger
    # counts them, then assembled:
    draft = DraftSums()
    for charge in [
        _charge("u1", "120.00"),
        _charge("u2", "10.30"),
        _charge("p1", "361.00", ChargeCategory.PURCHASE, LineType.COMMITMENT_FEE),
        _charge("n1", "18.00", ChargeCategory.USAGE, LineType.COMMITMENT_FEE),
        _charge("c1", "-15.00", ChargeCategory.CREDIT, LineType.CREDIT),
        _charge("r1", "-2.00", ChargeCategory.CREDIT, LineType.REFUND),
        _charge("x1", "-5.00", correction=True),
    ]:
        draft.add(charge_amounts(charge))
    invoice = finalized(customer("c", "DE"), charge_groups(draft.lines), 1)

    by_kind = {
        line.charge_kind: (line.service_name, line.charge_count, line.amount)
        for line in invoice.lines
    }
    assert by_kind == {
        ChargeKind.USAGE: ("Azure Blob Storage", 2, D("130.30")),
        ChargeKind.PURCHASE: ("Azure Blob Storage", 1, D("361.00")),
        ChargeKind.UNUSED_COMMITMENT: ("Azure Blob Storage", 1, D("18.00")),
        ChargeKind.CREDIT: ("Azure Blob Storage", 1, D("-15.00")),
        ChargeKind.REFUND: ("Azure Blob Storage", 1, D("-2.00")),
        ChargeKind.CORRECTION: ("Azure Blob Storage", 1, D("-5.00")),
    }
    assert invoice.subtotal == D("487.30")
    # the e-invoices' item names say the kind too
    assert [line.description for line in invoice.lines][:2] == [
        "Azure Blob Storage (Azure)",
        "Azure Blob Storage (Azure): purchase",
    ]
    sections = [(s.section, len(s.lines)) for s in printed_sections(invoice)]
    assert sections == [
        (Section.USAGE, 1),
        (Section.PURCHASES, 2),
        (Section.CREDITS, 2),
        (Section.CORRECTIONS, 1),
    ]


# --- lines under half a cent -------------------------------------------------------------------


def _group(price: str, service: str, kind: ChargeKind = ChargeKind.USAGE) -> ChargeGroup:
    return ChargeGroup(
        provider="AWS",
        service_name=service,
        charge_count=2,
        cost=D(0),
        price=D(price),
        charge_kind=kind,
    )


def small_invoice(language: str = "en") -> InvoiceDocument:
    """13 services under half a cent (13 x 0.004 = 0.052), beside two real ones."""
    groups = [_group("0.004", f"Service {i:02d}") for i in range(13)]
    groups += [_group("1204.55", "Amazon EC2"), _group("-0.002", "Amazon S3", ChargeKind.CREDIT)]
    groups += [_group("-0.001", "Amazon SQS", ChargeKind.CREDIT)]
    groups += [_group("361.00", "Amazon EC2", ChargeKind.PURCHASE)]
    return finalized(customer(f"small-{language}", "DE", language=language), groups, 3)


def test_lines_under_half_a_cent_are_printed_as_one_line_that_keeps_the_sum() -> None:
    invoice = small_invoice()
    sections = {s.section: s for s in printed_sections(invoice)}

    usage = sections[Section.USAGE]
    assert [line.service_name for line in usage.lines] == ["Amazon EC2"]
    assert usage.small is not None
    assert (usage.small.lines, usage.small.charge_count) == (13, 26)
    # the allocation gave five of the thirteen a cent: the folded line carries exactly those
    assert usage.small.amount == D("0.05")
    credits = sections[Section.CREDITS]
    assert credits.lines == []
    assert credits.small is not None
    assert credits.small.lines == 2
    assert sections[Section.PURCHASES].small is None  # a single line is never folded
    printed = sum(
        (
            sum((line.amount for line in s.lines), D(0)) + (s.small.amount if s.small else 0)
            for s in sections.values()
        ),
        D(0),
    )
    assert printed == invoice.subtotal
    # the document keeps every line: the CSV and the e-invoices list them
    assert len(invoice.lines) == 17


def test_the_pdf_names_the_small_lines_instead_of_printing_zeros() -> None:
    html = render_invoice_html(small_invoice())

    assert "Other usage, each service under €0.01" in html
    assert "13 lines" in html
    assert "Service 03" not in html


# --- the customer's language -------------------------------------------------------------------


def _template_messages() -> set[str]:
    options = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}
    found: set[str] = set()
    for name in ("invoice.html.j2", "credit_note.html.j2"):
        path = PACKAGE / "templates" / name
        # Jinja's extractor is what pybabel runs on templates (its signature predates Babel's types)
        extract = jinja2.ext.babel_extract
        for _, message, _, _ in extract_from_file(extract, path, options=options):  # type: ignore[arg-type]
            found.add(message if isinstance(message, str) else message[0])
    source = PACKAGE / "adapters" / "pdf.py"
    for _, message, _, _ in extract_from_file("python", source, keywords={"N_": None}):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_the_legal_mentions_translated_are_the_ones_invoices_carry() -> None:
    assert set(pdf.LEGAL_MENTIONS) == {REVERSE_CHARGE_MENTION, OUTSIDE_SCOPE_MENTION}
    assert set(pdf.LEGAL_MENTIONS) <= _template_messages()  # extracted like any label


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_label_has_a_checked_translation(language: str) -> None:
    path = PACKAGE / "templates" / "locale" / language / "LC_MESSAGES" / "documents.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=language)
    messages = _template_messages()
    assert len(messages) > 70

    missing = [m for m in sorted(messages) if not (catalog.get(m) and catalog[m].string)]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert (missing, fuzzy) == ([], [])
    for message in catalog:
        if message.id and isinstance(message.id, str):
            # the translation takes the same values (a typo would crash the rendering)
            assert sorted(_placeholders(message.id)) == sorted(_placeholders(message.string))


def _placeholders(text: object) -> list[str]:
    return re.findall(r"%\(\w+\)s", str(text))


ENGLISH_LABELS = ("Bill to", "Due date", "Billing period", "Amount due", "How to pay", "Subtotal")


@pytest.mark.parametrize(
    ("language", "labels"),
    [
        ("de", ("Rechnung", "Rechnungsempfänger", "Fälligkeitsdatum", "Zu zahlender Betrag")),
        ("fr", ("Facture", "Facturé à", "Date d'échéance", "Montant dû", "Règlement")),
        ("de-CH", ("Rechnung", "Rechnungsempfänger", "Zwischensumme")),
    ],
)
def test_the_invoice_is_in_the_customers_language(language: str, labels: tuple[str, ...]) -> None:
    html = render_invoice_html(small_invoice(language))

    assert [label for label in labels if label not in html] == []
    assert [label for label in ENGLISH_LABELS if label in html] == []


def test_the_pdf_text_is_german_for_a_german_customer() -> None:
    # through WeasyPrint, read back: labels, the page counter, the sections, the tax words
    buyer = customer("kunde", "DE", language="de")
    invoice = finalized(
        buyer, [_group("100", "Amazon EC2"), _group("-5", "Amazon EC2", ChargeKind.REFUND)], 9
    )
    text = " ".join(
        page.extract_text()
        for page in pypdf.PdfReader(
            io.BytesIO(pdf.render_invoice_pdf(invoice.model_dump_json()))
        ).pages
    )

    for label in ("Rechnung", "Seite 1 von 1", "Cloud-Nutzung", "Erstattung", "USt. 19%"):
        assert label in text
    for english in ("Invoice number", "Page 1", "Refund", "Amount due", "VAT 19%"):
        assert english not in text


def test_a_reverse_charge_mention_is_printed_in_the_customers_language() -> None:
    buyer = customer("client", "FR", vat_id="FR40303265045", language="fr")
    invoice = finalized(buyer, [_group("100", "Amazon EC2")], 4)
    html = render_invoice_html(invoice)

    assert "Autoliquidation : TVA due par le preneur (article 196" in html
    assert "TVA 0% (autoliquidation)" in html


def test_the_credit_note_is_in_the_customers_language() -> None:
    invoice = finalized(customer("kunde", "DE", language="de"), [_group("100", "Amazon EC2")], 5)
    note = CreditNoteDocument(
        number="CCR-CN-2024-000001",
        issue_date=date(2024, 10, 20),
        reason="Doppelt berechnet",
        void=False,
        net=D("10.00"),
        tax=D("1.90"),
        amount=D("11.90"),
    )
    html = render_credit_note_html(invoice, note)

    assert "Rechnungskorrektur" in html
    assert "Gutschrift auf Rechnung CCR-2024-000005: Doppelt berechnet" in html
    assert "Total credited" not in html


def test_a_charge_not_passed_on_stays_counted_on_its_services_usage_line() -> None:
    # a payer-bought reservation's fee under savings removal is priced 0: no line of 0.00 for
    # it, its count and cost stay on the service's usage line (where reconciliation finds them)
    fee = _group("0", "Amazon EC2", ChargeKind.PURCHASE).model_copy(update={"cost": D("50")})
    lonely = _group("0", "Amazon S3", ChargeKind.PURCHASE)
    invoice = finalized(customer("c", "DE"), [_group("10", "Amazon EC2"), fee, lonely], 2)

    assert [(x.service_name, x.charge_kind, x.charge_count, x.cost) for x in invoice.lines] == [
        ("Amazon EC2", ChargeKind.USAGE, 4, D("50")),
        ("Amazon S3", ChargeKind.PURCHASE, 2, D("0")),
    ]
