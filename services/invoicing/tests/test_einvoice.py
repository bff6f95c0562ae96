"""EN 16931 e-invoices (docs/einvoice.md): the mapping, the amounts read back, and validation.

The cases (``einvoice_cases.py``) are real invoices assembled by the domain: domestic VAT,
reverse charge, not subject, JPY, subscription netting with a late line, a prorated
subscription (a line period per span), a credit note and a cancelling one. Every one of them,
in every format, goes through the Mustang validator; a document with a broken VAT total must
fail it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from einvoice_cases import REPORTS, SELLER, Case, cases, customer, errors_in, validate
from lxml import etree
from pydantic import ValidationError

from billing_catalog.models import (
    Catalog,
    Customer,
    EInvoiceFormat,
    InvoicingEntity,
    PaymentMethod,
)
from billing_invoicing.adapters.einvoice import (
    PEPPOL_ID,
    XRECHNUNG_ID,
    EInvoiceFormatError,
    einvoice_xml,
    read_amounts,
    xrechnung_xml,
)
from billing_invoicing.adapters.einvoice_renderer import CustomerPdfRenderer
from billing_invoicing.adapters.pdf import PdfRenderer
from billing_invoicing.domain.einvoice import (
    CreditNoteDocument,
    DocumentType,
    EInvoiceError,
    VatCategory,
    einvoice_from_invoice,
    payment_of,
    routing_for,
    seller_details_for,
)
from billing_invoicing.domain.invoice import InvoiceDocument, LineKind

D = Decimal
CASES = {case.name: case for case in cases()}


def test_the_cases_cover_every_situation_we_issue() -> None:
    categories = {c.document.vat_breakdown[0].vat.category for c in CASES.values()}
    assert categories == {
        VatCategory.STANDARD,
        VatCategory.REVERSE_CHARGE,
        VatCategory.NOT_SUBJECT,
    }
    assert {c.document.currency for c in CASES.values()} == {"EUR", "USD", "JPY"}
    assert {c.document.type_code for c in CASES.values()} == set(DocumentType)
    kinds = {line.kind for line in CASES["netting-and-late"].invoice.lines}
    assert {LineKind.SUBSCRIPTION, LineKind.INCLUDED, LineKind.CORRECTION} <= kinds


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_documents_amounts_are_the_invoices(name: str) -> None:
    case = CASES[name]
    document, invoice = case.document, case.invoice
    if document.type_code is DocumentType.INVOICE:
        assert document.tax_exclusive == invoice.subtotal
        assert document.tax_total == invoice.tax
        assert document.grand_total == document.payable == invoice.total
        assert [b.taxable for b in document.vat_breakdown] == [t.base for t in invoice.taxes]
        assert [b.tax for b in document.vat_breakdown] == [t.tax for t in invoice.taxes]
    # BR-CO-10, BR-CO-13, BR-CO-15: the document's own sums hold without any rounding
    assert document.line_total == sum((line.net_amount for line in document.lines), D(0))
    assert document.tax_exclusive == document.line_total - document.allowance_total
    assert document.grand_total == document.tax_exclusive + document.tax_total


@pytest.mark.parametrize("fmt", list(EInvoiceFormat))
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_xml_read_back_has_the_invoices_amounts(name: str, fmt: EInvoiceFormat) -> None:
    document = CASES[name].document
    amounts = read_amounts(einvoice_xml(document, fmt))
    category = document.vat_breakdown[0].vat.category.value
    expected = {
        "BT-106": document.line_total,
        "BT-109": document.tax_exclusive,
        "BT-110": document.tax_total,
        "BT-112": document.grand_total,
        "BT-115": document.payable,
        f"BT-116:{category}": document.vat_breakdown[0].taxable,
        f"BT-117:{category}": document.vat_breakdown[0].tax,
    }
    if document.allowances:
        expected["BT-107"] = document.allowance_total
    assert amounts == expected


def test_the_domestic_invoice_keeps_the_vat_taken_on_the_unrounded_lines() -> None:
    # lines 6.013 + 4.013 = 10.026, printed 6.01 + 4.02 (largest remainder) = 10.03;
    # VAT 19 % of the unrounded 10.026 = 1.90494 -> 1.90 (19 % of 10.03 would be 1.91)
    amounts = read_amounts(einvoice_xml(CASES["domestic"].document, EInvoiceFormat.FACTURX))
    assert amounts["BT-109"] == D("10.03")
    assert amounts["BT-110"] == D("1.90")
    assert amounts["BT-112"] == D("11.93")


def test_netting_is_a_document_level_allowance_and_a_late_line_a_line() -> None:
    document = CASES["netting-and-late"].document
    # cloud 300.125 + 137.125 = 437.25, 400.00 of it included: one allowance of 400.00
    assert [(a.amount, a.reason) for a in document.allowances] == [
        (D("400.00"), "Included cloud infrastructure (plans)")
    ]
    names = [line.name for line in document.lines]
    assert names[0] == "Business subscription"
    assert any("usage of 2024-08" in name for name in names)
    # fee 500 + cloud 437.25 + late 42.10 - included 400 = 579.35
    assert document.tax_exclusive == D("579.35")


_CII_LINE_PERIOD = (
    "//ram:IncludedSupplyChainTradeLineItem/ram:SpecifiedLineTradeSettlement"
    "/ram:BillingSpecifiedPeriod"
)
_NS = {
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}


@pytest.mark.parametrize("fmt", list(EInvoiceFormat))
def test_a_prorated_subscription_line_states_its_span_as_its_period(fmt: EInvoiceFormat) -> None:
    # BG-26: BT-134 start, BT-135 end of each span; the usage line states none
    document = CASES["prorated"].document
    assert [(line.period_start, line.period_end) for line in document.lines] == [
        (date(2024, 9, 10), date(2024, 9, 19)),
        (date(2024, 9, 20), date(2024, 9, 30)),
        (None, None),
    ]
    root = etree.fromstring(einvoice_xml(document, fmt))
    if fmt is EInvoiceFormat.PEPPOL:
        periods = [
            (p.findtext("cbc:StartDate", namespaces=_NS), p.findtext("cbc:EndDate", namespaces=_NS))
            for p in root.iterfind("cac:InvoiceLine/cac:InvoicePeriod", _NS)
        ]
        spans = [("2024-09-10", "2024-09-19"), ("2024-09-20", "2024-09-30")]
    else:
        periods = [
            (
                p.findtext("ram:StartDateTime/udt:DateTimeString", namespaces=_NS),
                p.findtext("ram:EndDateTime/udt:DateTimeString", namespaces=_NS),
            )
            for p in root.xpath(_CII_LINE_PERIOD, namespaces=_NS)
        ]
        spans = [("20240910", "20240919"), ("20240920", "20240930")]
    assert periods == spans


def test_payment_means_take_the_first_valid_iban_of_the_sellers_methods() -> None:
    payment = CASES["domestic"].document.payment
    assert payment is not None
    assert (payment.means_code, payment.iban, payment.bic) == (
        "58",
        "DE89370400440532013000",
        "COBADEFFXXX",
    )
    truncated = [PaymentMethod(kind="Bank transfer", details="IBAN DE89 3704 0044")]
    assert payment_of(truncated, "N-1", None).means_code == "1"  # not an IBAN: "not defined"


def test_a_negative_line_has_a_negative_quantity_and_a_positive_price() -> None:
    credit = next(line for line in CASES["reverse-charge"].document.lines if line.net_amount < 0)
    assert (credit.quantity, credit.net_price, credit.net_amount) == (
        D(-1),
        D("12.50"),
        D("-12.50"),
    )


def test_reverse_charge_is_ae_with_its_exemption_reason() -> None:
    vat = CASES["reverse-charge"].document.vat_breakdown[0].vat
    assert vat.category is VatCategory.REVERSE_CHARGE
    assert vat.percent == 0
    assert vat.exemption_code == "VATEX-EU-AE"
    assert vat.exemption_text is not None
    assert "Article 196" in vat.exemption_text


def test_not_subject_is_o_without_vat_ids_but_with_the_seller_identified() -> None:
    document = CASES["not-subject"].document
    vat = document.vat_breakdown[0].vat
    assert (vat.category, vat.percent, vat.exemption_code) == (
        VatCategory.NOT_SUBJECT,
        None,
        "VATEX-EU-O",
    )
    assert document.seller.vat_id is None
    assert document.buyer.vat_id is None
    assert document.seller.identifier == SELLER.vat_id


def test_a_credit_note_is_381_and_references_its_invoice() -> None:
    case = CASES["credit-note"]
    document = case.document
    assert document.type_code is DocumentType.CREDIT_NOTE
    assert document.preceding is not None
    assert document.preceding.number == case.invoice.number
    assert document.preceding.issue_date == case.invoice.issue_date
    # 5.00 credited on 10.03 + 1.90 = 11.93: tax 5.00 x 1.90 / 11.93 = 0.796... -> 0.80
    assert (document.tax_exclusive, document.tax_total, document.grand_total) == (
        D("4.20"),
        D("0.80"),
        D("5.00"),
    )
    root = etree.fromstring(einvoice_xml(document, EInvoiceFormat.PEPPOL))
    assert etree.QName(root).localname == "CreditNote"
    ns = {"cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"}
    assert root.findtext("cbc:CreditNoteTypeCode", namespaces=ns) == "381"


def test_the_specification_identifiers_say_the_format() -> None:
    document = CASES["domestic"].document
    assert XRECHNUNG_ID.encode() in einvoice_xml(document, EInvoiceFormat.XRECHNUNG)
    assert PEPPOL_ID.encode() in einvoice_xml(document, EInvoiceFormat.PEPPOL)
    assert b"urn:cen.eu:en16931:2017<" in einvoice_xml(document, EInvoiceFormat.FACTURX)


def test_xrechnung_refuses_a_document_without_what_it_requires() -> None:
    case = CASES["domestic"]
    bare = case.invoice.model_copy()
    document = einvoice_from_invoice(bare)  # no catalog details: no city, phone, address
    with pytest.raises(EInvoiceFormatError, match=r"seller's city.*telephone"):
        xrechnung_xml(document)


def test_peppol_refuses_a_party_without_a_peppol_id() -> None:
    case = CASES["domestic"]
    no_ids = einvoice_from_invoice(
        case.invoice,
        routing_for(case.buyer.model_copy(update={"peppol_participant_id": None})),
        seller_details_for(SELLER.model_copy(update={"peppol_participant_id": None})),
    )
    assert (no_ids.buyer.electronic_scheme, no_ids.seller.electronic_scheme) == ("EM", "EM")
    with pytest.raises(EInvoiceFormatError, match="seller and the buyer's Peppol participant id"):
        einvoice_xml(no_ids, EInvoiceFormat.PEPPOL)


def test_an_invoice_whose_lines_do_not_add_up_is_refused_not_adjusted() -> None:
    invoice = CASES["domestic"].invoice
    broken = invoice.model_copy(update={"subtotal": invoice.subtotal + D("0.01")})
    with pytest.raises(EInvoiceError, match="differ from the subtotal"):
        einvoice_from_invoice(broken)


def test_a_draft_has_no_einvoice() -> None:
    draft = CASES["domestic"].invoice.model_copy(update={"number": None})
    with pytest.raises(EInvoiceError, match="not finalized"):
        einvoice_from_invoice(draft)


def catalog_with_vat_id(vat_id: str) -> Catalog:
    buyer = customer("alpha", "DE", vat_id=vat_id).model_dump(mode="json", exclude_none=True)
    buyer["price_list"] = {"id": "standard"}
    return Catalog.model_validate(
        {
            "invoicing_entities": [SELLER.model_dump(mode="json", exclude_none=True)],
            "customers": [buyer],
        }
    )


def test_the_catalog_refuses_a_vat_id_with_a_wrong_check_digit_and_says_why() -> None:
    with pytest.raises(ValidationError, match=r"customer 'alpha': VAT id 'DE123456789'.*check"):
        catalog_with_vat_id("DE123456789")
    with pytest.raises(ValidationError, match=r"VAT id 'XX123'"):
        catalog_with_vat_id("XX123")
    assert catalog_with_vat_id("DE123456788").customers[0].vat_id == "DE123456788"


# -- validation by the Mustang validator (JDK; jars from Maven Central, fetched once) -------


@pytest.fixture(scope="module")
async def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Case]:
    """Every case in every format: the XRechnung and Peppol XML, the Factur-X CII alone and the
    Factur-X PDF/A-3 carrying it (a credit note's rendered from its own template)."""
    folder = tmp_path_factory.mktemp("einvoices")
    written: dict[Path, Case] = {}
    async with PdfRenderer() as renderer:  # WeasyPrint in its worker process, as in the service
        for case in CASES.values():
            cii = einvoice_xml(case.document, EInvoiceFormat.FACTURX)
            path = folder / f"{case.name}-facturx.pdf"
            if case.note is None:
                pdf = await renderer.render_facturx(case.invoice, cii)
            else:
                pdf = await renderer.render_credit_note_facturx(case.invoice, case.note, cii)
            path.write_bytes(pdf)
            written[path] = case
    for case in CASES.values():
        for fmt in EInvoiceFormat:
            path = folder / f"{case.name}-{fmt}.xml"
            path.write_bytes(einvoice_xml(case.document, fmt))
            written[path] = case
    return written


@pytest.fixture
def reports(request: pytest.FixtureRequest) -> Iterator[Path]:
    """This test's report folder under var/einvoice-reports; removed when nothing was kept."""
    folder = REPORTS / request.node.name.replace("/", "_")
    shutil.rmtree(folder, ignore_errors=True)
    yield folder
    if folder.exists() and not any(folder.iterdir()):
        folder.rmdir()


@pytest.mark.integration
@pytest.mark.timeout(900)  # one JVM for 32 documents; veraPDF takes a while per PDF
def test_every_document_passes_the_mustang_validator(
    documents: dict[Path, Case], reports: Path
) -> None:
    verdicts = validate(list(documents), reports)
    assert len(verdicts) == len(documents) == 8 * 4
    invalid = {
        path.name: errors_in(verdict.report)
        for path, verdict in verdicts.items()
        if not verdict.valid
    }
    assert not invalid, f"invalid e-invoices (reports kept in {reports}): {invalid}"


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_validator_catches_a_broken_vat_total(tmp_path: Path, reports: Path) -> None:
    xml = einvoice_xml(CASES["domestic"].document, EInvoiceFormat.FACTURX)
    root = etree.fromstring(xml)
    ns = {
        "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
    }
    (tax_total,) = root.iterfind(
        ".//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:TaxTotalAmount", ns
    )
    assert tax_total.text == "1.90"
    tax_total.text = "2.90"  # the grand total still says 11.93 = 10.03 + 1.90
    broken = tmp_path / "broken-vat-total.xml"
    broken.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    good = tmp_path / "good.xml"
    good.write_bytes(xml)

    # and a Peppol document whose seller endpoint is an e-mail: only Peppol's own rules refuse it
    peppol = einvoice_xml(CASES["domestic"].document, EInvoiceFormat.PEPPOL)
    assert b'schemeID="9930">DE123456788<' in peppol
    email_endpoint = tmp_path / "email-endpoint-peppol.xml"
    email_endpoint.write_bytes(
        peppol.replace(b'schemeID="9930">DE123456788<', b'schemeID="EM">billing@cumulus.example<')
    )

    verdicts = validate([broken, good, email_endpoint], reports)

    assert verdicts[good].valid
    assert not verdicts[broken].valid
    assert verdicts[broken].report.exists(), "the report of an invalid document is kept"
    assert any("BR-CO-15" in error for error in errors_in(verdicts[broken].report))
    assert not verdicts[email_endpoint].valid
    assert any("PEPPOL-EN16931-CL008" in e for e in errors_in(verdicts[email_endpoint].report))


# -- the invoice PDF per customer: Factur-X replaces the plain PDF -------------------------


class RecordingRenderer:
    """Stands in for the PDF pool: says which PDF it was asked for."""

    def __init__(self) -> None:
        self.facturx_xml: list[bytes] = []

    async def render(self, invoice: InvoiceDocument) -> bytes:
        return b"plain " + (invoice.number or "").encode()

    async def render_facturx(self, invoice: InvoiceDocument, xml: bytes) -> bytes:
        self.facturx_xml.append(xml)
        return b"facturx " + (invoice.number or "").encode()

    async def render_credit_note(self, invoice: InvoiceDocument, note: CreditNoteDocument) -> bytes:
        return b"plain " + note.number.encode()

    async def render_credit_note_facturx(
        self, invoice: InvoiceDocument, note: CreditNoteDocument, xml: bytes
    ) -> bytes:
        self.facturx_xml.append(xml)
        return b"facturx " + note.number.encode()


class Catalog1:
    """The catalog port with one customer and the seller."""

    def __init__(self, buyer: Customer) -> None:
        self.buyer = buyer

    async def customer(self, customer_id: str) -> Customer | None:
        return self.buyer if customer_id == self.buyer.id else None

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        return SELLER if entity_id == SELLER.id else None


async def test_a_customer_receiving_facturx_gets_it_as_the_invoice_pdf() -> None:
    case = CASES["reverse-charge"]
    inner = RecordingRenderer()
    pdf = await CustomerPdfRenderer(inner, Catalog1(case.buyer)).render(case.invoice)
    assert pdf == b"facturx CCR-2024-000002"
    (xml,) = inner.facturx_xml
    assert read_amounts(xml)["BT-112"] == case.invoice.total


async def test_other_customers_get_the_plain_pdf() -> None:
    case = CASES["domestic"]
    plain = case.buyer.model_copy(update={"einvoice": [EInvoiceFormat.PEPPOL]})
    inner = RecordingRenderer()
    assert await CustomerPdfRenderer(inner, Catalog1(plain)).render(case.invoice) == (
        b"plain CCR-2024-000001"
    )
    assert inner.facturx_xml == []


async def test_an_invoice_without_an_einvoice_is_still_issued_with_the_plain_pdf(
    caplog: pytest.LogCaptureFixture,
) -> None:
    case = CASES["domestic"]
    broken = case.invoice.model_copy(update={"taxes": [*case.invoice.taxes] * 2})
    inner = RecordingRenderer()
    pdf = await CustomerPdfRenderer(inner, Catalog1(case.buyer)).render(broken)
    assert pdf == b"plain CCR-2024-000001"
    assert "no Factur-X: invoice alpha:2024-09: 2 tax rates, expected one" in caplog.text
