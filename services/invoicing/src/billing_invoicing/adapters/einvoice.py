"""EN 16931 documents written from the domain's :class:`EInvoice`, by the ``factur-x`` package.

The ``factur-x`` package (Akretion) builds both syntaxes from a dictionary keyed by business
term (``BT-1``, ``BG-25``...) and checks each result against its XML schema; we never write the
XML ourselves. What differs between the formats we issue is the specification identifier
(BT-24), which that package sets to plain EN 16931; the two CIUS are EN 16931 plus rules, so
their identifier is set on the tree it built:

* ``facturx``: CII, Factur-X/ZUGFeRD profile EN 16931, embedded as ``factur-x.xml`` in the
  PDF/A-3b invoice (:func:`facturx_pdf`);
* ``xrechnung``: CII with the German CIUS (XRechnung 3.0) identifier;
A not-subject (``O``) breakdown states a rate of 0: EN 16931 forbids a rate on its lines only,
and XRechnung requires one in the breakdown (BR-DE-14).

* ``peppol``: UBL Invoice or CreditNote with the Peppol BIS Billing 3.0 identifier; both it and
  XRechnung state Peppol's billing process (BT-23), which XRechnung 3.0 requires too.

:func:`read_amounts` reads a document back (the package's parser) so that tests can check the
amounts written are the invoice's.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

# facturx (with pypdf) is imported where it is used: importing it costs ~1 s of CPU, which every
# `billing` command and the invoicing service paid at start-up (`billing invoices generate` is
# on the close's critical path) although only e-invoices and Factur-X PDFs need it
from lxml import etree

from billing_catalog.models import EInvoiceFormat
from billing_invoicing.domain.einvoice import (
    EAllowance,
    EInvoice,
    ELine,
    EParty,
    Payment,
    VatBreakdown,
)

XRECHNUNG_ID = "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
PEPPOL_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PEPPOL_PROFILE = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
"""Peppol BIS Billing 3.0's business process (BT-23)."""

FACTURX_FILENAME = "factur-x.xml"

_CII = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
}
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"


class EInvoiceFormatError(ValueError):
    """A document lacks what a format's rules require (the message says what)."""


def _amount(value: Decimal) -> str:
    # The package rounds to the currency's minor units; our amounts already are, so this is a
    # plain conversion to its string input, never a second rounding.
    return f"{value:f}"


def _party(party: EParty) -> dict[str, Any]:
    lines = list(party.address_lines)[:3]
    result: dict[str, Any] = {
        "name": party.name,
        "country_code": party.country,
        **{f"addr_l{n}": line for n, line in enumerate(lines, 1)},
    }
    if party.city:
        result["city"] = party.city
    if party.postal_code:
        result["postcode"] = party.postal_code
    if party.vat_id:
        result["vat_identifier"] = party.vat_id
    if party.identifier:
        result["identifiers"] = {"": party.identifier}
    if party.electronic_address and party.electronic_scheme:
        result["einvoicing_addr"] = party.electronic_address
        result["einvoicing_addr_schemeid"] = party.electronic_scheme
    if party.contact_email or party.contact_phone:
        contact = {"name": party.name, "email": party.contact_email, "phone": party.contact_phone}
        result["contacts"] = [{k: v for k, v in contact.items() if v}]
    return result


def _line(line: ELine) -> dict[str, Any]:
    result: dict[str, Any] = {
        "BT-126": line.line_id,
        "BT-153": line.name,
        "BT-129": f"{line.quantity:f}",
        "BT-130": line.unit,
        "BT-146": f"{line.net_price:f}",
        "BT-131": _amount(line.net_amount),
        "BT-151": line.vat.category.value,
    }
    if line.vat.percent is not None:
        result["BT-152"] = f"{line.vat.percent:f}"
    if line.period_start and line.period_end:
        result["BT-134"] = line.period_start
        result["BT-135"] = line.period_end
    return result


def _allowance(allowance: EAllowance) -> dict[str, Any]:
    result: dict[str, Any] = {
        "amount": _amount(allowance.amount),
        "reason": allowance.reason,
        "vat_category_code": allowance.vat.category.value,
    }
    if allowance.vat.percent is not None:
        result["vat_rate"] = f"{allowance.vat.percent:f}"
    return result


def facturx_data(document: EInvoice) -> dict[str, Any]:
    """The ``factur-x`` package's input for ``document``: one key per business term."""
    data: dict[str, Any] = {
        "BT-1": document.number,
        "BT-2": document.issue_date,
        "BT-3": document.type_code.value,
        "BT-5": document.currency,
        "BT-10": document.buyer_reference,
        "BT-73": document.period_start,
        "BT-74": document.period_end,
        "BG-4": _party(document.seller),
        "BG-7": _party(document.buyer),
        "BG-25": [_line(line) for line in document.lines],
        "BG-23": [_vat_breakdown(b) for b in document.vat_breakdown],
        "BT-106": _amount(document.line_total),
        "BT-109": _amount(document.tax_exclusive),
        "BT-110": _amount(document.tax_total),
        "BT-112": _amount(document.grand_total),
        "BT-115": _amount(document.payable),
    }
    if document.prepaid:
        data["BT-113"] = _amount(document.prepaid)
    if document.allowances:
        data["BG-20"] = [_allowance(a) for a in document.allowances]
        data["BT-107"] = _amount(document.allowance_total)
    if document.due_date:
        data["BT-9"] = document.due_date
    if document.notes:
        data["BG-1"] = [{"BT-22": note} for note in document.notes]
    if document.preceding:
        data["BG-3"] = [
            {
                "BT-25": document.preceding.number,
                **(
                    {"BT-26": document.preceding.issue_date}
                    if document.preceding.issue_date
                    else {}
                ),
            }
        ]
    if document.payment:
        data |= _payment(document.payment)
    return data


def _vat_breakdown(b: VatBreakdown) -> dict[str, Any]:
    """BG-23: one VAT rate's taxable amount and tax."""
    return {
        "BT-116": _amount(b.taxable),
        "BT-117": _amount(b.tax),
        "BT-118": b.vat.category.value,
        "BT-119": f"{b.vat.percent or 0:f}",  # O: 0 (module docstring)
        **({"BT-120": b.vat.exemption_text} if b.vat.exemption_text else {}),
        **({"BT-121": b.vat.exemption_code} if b.vat.exemption_code else {}),
    }


def _payment(payment: Payment) -> dict[str, Any]:
    """The payment means, remittance, account and terms."""
    data: dict[str, Any] = {"BT-81": payment.means_code, "BT-83": payment.remittance}
    if payment.means_text:
        data["BT-82"] = payment.means_text
    if payment.iban:
        data["BT-84"] = payment.iban
    if payment.bic:
        data["BT-86"] = payment.bic
    if payment.terms:
        data["BT-20"] = payment.terms
    return data


def _generate(
    document: EInvoice, flavor: str, business_process: str | None = None
) -> etree._Element:
    from facturx import generate_xml, xml_check_xsd  # type: ignore[import-untyped]

    data = facturx_data(document)
    if business_process:
        data["BT-23"] = business_process
    xml = generate_xml(
        data,
        flavor=flavor,
        level="en16931",
        check_xsd=False,  # checked below, once the empty elements are cleaned
        check_schematron=False,  # the package's schematron check needs a Saxon server
    )
    root: etree._Element = etree.fromstring(xml)
    # lxml's objectify marks an element made without children xsi:nil (the package leaves
    # ApplicableHeaderTradeDelivery empty when there is no delivery date); the schemas do not
    # allow nil there, and an empty element is what they expect.
    for element in root.iter():
        element.attrib.pop(_XSI_NIL, None)
    xml_check_xsd(root, flavor=flavor, level="en16931")
    return root


def _serialize(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8"))


def cii_xml(document: EInvoice) -> bytes:
    """CII XML, Factur-X/ZUGFeRD profile EN 16931 (what ``factur-x.xml`` holds)."""
    return _serialize(_generate(document, "factur-x"))


def xrechnung_xml(document: EInvoice) -> bytes:
    """CII XML with the German CIUS identifier (XRechnung 3.0).

    XRechnung requires what EN 16931 leaves optional: the buyer reference (the Leitweg-ID for
    public buyers), the seller's city, post code, contact e-mail and telephone, both parties'
    electronic addresses, and payment instructions; a document without them is refused here
    rather than by the recipient.
    """
    missing = [
        what
        for what, value in (
            ("the seller's city", document.seller.city),
            ("the seller's post code", document.seller.postal_code),
            ("the buyer's city", document.buyer.city),
            ("the buyer's post code", document.buyer.postal_code),
            ("the seller's e-mail", document.seller.contact_email),
            ("the seller's telephone", document.seller.contact_phone),
            ("the buyer's electronic address", document.buyer.electronic_address),
            ("payment instructions", document.payment),
        )
        if not value
    ]
    if missing:
        msg = f"{document.number}: XRechnung needs {', '.join(missing)}"
        raise EInvoiceFormatError(msg)
    root = _generate(document, "factur-x", PEPPOL_PROFILE)
    guideline = root.find(
        "rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID", _CII
    )
    if guideline is None:
        msg = "the factur-x package wrote no specification identifier (BT-24)"
        raise EInvoiceFormatError(msg)
    guideline.text = XRECHNUNG_ID
    return _serialize(root)


def peppol_xml(document: EInvoice) -> bytes:
    """UBL 2.1 Invoice (or CreditNote, type 381) for Peppol BIS Billing 3.0.

    Peppol requires both parties' electronic addresses (endpoint ids) from its code list, which
    has no e-mail: the catalog's Peppol participant ids of the customer and the invoicing entity.
    """
    missing = [
        who
        for who, party in (("seller", document.seller), ("buyer", document.buyer))
        if not party.electronic_address or party.electronic_scheme in (None, "EM")
    ]
    if missing:
        # an e-mail address is no Peppol endpoint (PEPPOL-EN16931-CL008)
        msg = (
            f"{document.number}: Peppol needs the {' and the '.join(missing)}'s Peppol "
            "participant id (catalog: peppol_participant_id)"
        )
        raise EInvoiceFormatError(msg)
    root = _generate(document, "ubl-2.1", PEPPOL_PROFILE)
    customization = root.find(f"{{{_CBC}}}CustomizationID")
    if customization is None:
        msg = "the factur-x package wrote no CustomizationID (BT-24)"
        raise EInvoiceFormatError(msg)
    customization.text = PEPPOL_ID
    return _serialize(root)


def einvoice_xml(document: EInvoice, fmt: EInvoiceFormat) -> bytes:
    """The XML of ``document`` in ``fmt``."""
    if fmt is EInvoiceFormat.XRECHNUNG:
        return xrechnung_xml(document)
    if fmt is EInvoiceFormat.PEPPOL:
        return peppol_xml(document)
    return cii_xml(document)


def facturx_pdf(pdf: bytes, xml: bytes, *, title: str, author: str, lang: str) -> bytes:
    """Embed the CII XML in a PDF/A-3b invoice as ``factur-x.xml`` (AFRelationship ``Data``),
    with the Factur-X XMP extension schema (document type, file name, version, profile)."""
    from facturx import generate_from_binary

    result = generate_from_binary(
        pdf,
        xml,
        flavor="factur-x",
        level="en16931",
        check_xsd=True,
        pdf_metadata={"author": author, "keywords": "Factur-X", "title": title, "subject": title},
        lang=lang,
        afrelationship="data",
    )
    if not isinstance(result, bytes):
        msg = f"factur-x returned {type(result).__name__}, expected bytes"
        raise TypeError(msg)
    return result


def read_amounts(xml: bytes) -> dict[str, Decimal]:
    """The document totals read back from a CII or UBL document (BT-106 to BT-115), and the
    taxable amount and tax of each VAT breakdown (``BT-116:<category>``...)."""
    from facturx.parse_xml import parse_ubl_cii_xml  # type: ignore[import-untyped]

    parsed = parse_ubl_cii_xml(xml)
    data: dict[str, Any] = parsed[0] if isinstance(parsed, tuple) else parsed
    amounts = {
        key: Decimal(str(data[key]))
        for key in ("BT-106", "BT-107", "BT-109", "BT-110", "BT-112", "BT-115")
        if data.get(key) is not None
    }
    for breakdown in data.get("BG-23") or []:
        category = breakdown["BT-118"]
        amounts[f"BT-116:{category}"] = Decimal(str(breakdown["BT-116"]))
        amounts[f"BT-117:{category}"] = Decimal(str(breakdown["BT-117"]))
    return amounts
