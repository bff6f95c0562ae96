"""EN 16931 e-invoices: our invoice and credit note mapped once to the European semantic model.

Every structured format we issue (Factur-X and XRechnung in CII syntax, Peppol BIS Billing 3.0
in UBL) is written from the :class:`EInvoice` made here; the adapters only choose the syntax.
The mapping table (our field -> business term BT-x) is ``docs/einvoice.md``.

Rules this module keeps:

* **No second rounding.** Every amount is one the invoice document already holds: the printed
  (rounded) line amounts, the subtotal, the tax per rate and the total. The sum of line net
  amounts less the document-level allowances equals the subtotal (BR-CO-13), because our lines
  were allocated to add up to it; a document where it would not is refused, never adjusted.
* **Netting as allowances.** Included infrastructure netted against cloud charges (negative
  ``included`` lines) becomes document-level allowances (BG-20), not negative lines.
  A negative line of another kind (a credit in a provider's bill, a late negative correction)
  stays a line, with quantity -1 and its price positive (an item net price is never negative,
  BR-27).
* **Late usage** (a correction line of an earlier period) says its period in its name only: a
  line period (BG-26) must lie within the invoice period (PEPPOL-EN16931-R110, in XRechnung too).
* **A prorated subscription** (``domain/proration.py``) states its span as its line period
  (BG-26: BT-134 its first day, BT-135 its last), which lies within the invoice period.
* **VAT categories** follow the invoice's tax regime (``domain/tax.py``): a rate charged is
  ``S`` (standard); the reverse-charge mention is ``AE`` with exemption reason code
  ``VATEX-EU-AE``; the out-of-scope mention is ``O`` with ``VATEX-EU-O``, no rate on its lines
  (BR-O-05) and 0 in its breakdown (XRechnung's BR-DE-14 wants one there), and (BR-O-02)
  no seller or buyer VAT id: the seller is then identified by its VAT number as seller
  identifier (BT-29) instead.
* **Credit notes** are type 381 and reference the invoice they correct (BG-3, BT-25 and BT-26);
  their single line is the credited net amount, in the invoice's VAT category.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from enum import StrEnum

from stdnum import iban

from billing_catalog.models import Customer, InvoicingEntity, PaymentMethod
from billing_invoicing.domain.invoice import (
    InvoiceDocument,
    InvoiceLine,
    LineKind,
    Party,
    period_bounds,
)
from billing_invoicing.domain.tax import OUTSIDE_SCOPE_MENTION, REVERSE_CHARGE_MENTION

ZERO = Decimal(0)
UNIT_ONE = "C62"
"""UN/ECE Recommendation 20 unit code "one": a line is one service for the period."""


class EInvoiceError(ValueError):
    """An invoice that cannot be expressed as a valid EN 16931 document (the message says why)."""


class DocumentType(StrEnum):
    """UNTDID 1001 document type codes (BT-3)."""

    INVOICE = "380"  # commercial invoice
    CREDIT_NOTE = "381"


class VatCategory(StrEnum):
    """UNTDID 5305 VAT category codes (BT-118, BT-151) this biller uses."""

    STANDARD = "S"
    ZERO_RATED = "Z"
    REVERSE_CHARGE = "AE"
    NOT_SUBJECT = "O"


@dataclass(frozen=True)
class Vat:
    """A VAT category with its rate and, for exempt categories, the reason (BT-120, BT-121)."""

    category: VatCategory
    percent: Decimal | None
    exemption_code: str | None = None
    exemption_text: str | None = None


@dataclass(frozen=True)
class EParty:
    """A seller (BG-4) or buyer (BG-7)."""

    name: str  # BT-27 / BT-44
    address_lines: tuple[str, ...]  # BT-35..37 / BT-50..52
    country: str  # BT-40 / BT-55
    vat_id: str | None  # BT-31 / BT-48
    identifier: str | None = None  # BT-29 (seller identifier, no scheme)
    city: str | None = None  # BT-37 / BT-52
    postal_code: str | None = None  # BT-38 / BT-53
    electronic_address: str | None = None  # BT-34 / BT-49
    electronic_scheme: str | None = None  # its scheme (CEF EAS code, e.g. EM, 0088, 9930)
    contact_email: str | None = None  # BT-43 / BT-58
    contact_phone: str | None = None  # BT-42 / BT-57


@dataclass(frozen=True)
class ELine:
    """An invoice line (BG-25)."""

    line_id: str  # BT-126
    name: str  # BT-153
    quantity: Decimal  # BT-129
    unit: str  # BT-130
    net_price: Decimal  # BT-146, never negative
    net_amount: Decimal  # BT-131 = quantity x price
    vat: Vat  # BT-151, BT-152
    period_start: date | None = None  # BT-134 (BG-26): a prorated subscription's first day
    period_end: date | None = None  # BT-135: its last day


@dataclass(frozen=True)
class EAllowance:
    """A document-level allowance (BG-20): a positive amount taken off the lines' sum."""

    amount: Decimal  # BT-92
    reason: str  # BT-97
    vat: Vat  # BT-95, BT-96


@dataclass(frozen=True)
class VatBreakdown:
    """One VAT category and rate of the VAT breakdown (BG-23)."""

    vat: Vat  # BT-118, BT-119, BT-120, BT-121
    taxable: Decimal  # BT-116
    tax: Decimal  # BT-117


@dataclass(frozen=True)
class Payment:
    """Payment instructions (BG-16, BG-17) and terms (BT-20)."""

    means_code: str  # BT-81: 58 SEPA credit transfer, 30 credit transfer, 1 not defined
    means_text: str | None  # BT-82
    remittance: str  # BT-83: the invoice number
    iban: str | None = None  # BT-84
    bic: str | None = None  # BT-86
    terms: str | None = None  # BT-20


@dataclass(frozen=True)
class PrecedingInvoice:
    """The invoice a credit note corrects (BG-3)."""

    number: str  # BT-25
    issue_date: date | None  # BT-26


@dataclass(frozen=True)
class EInvoice:
    """An invoice or credit note in the terms of EN 16931 (the neutral model every syntax uses)."""

    type_code: DocumentType  # BT-3
    number: str  # BT-1
    issue_date: date  # BT-2
    due_date: date | None  # BT-9
    currency: str  # BT-5
    buyer_reference: str  # BT-10
    period_start: date  # BT-73
    period_end: date  # BT-74
    seller: EParty  # BG-4
    buyer: EParty  # BG-7
    lines: tuple[ELine, ...]  # BG-25
    allowances: tuple[EAllowance, ...]  # BG-20
    vat_breakdown: tuple[VatBreakdown, ...]  # BG-23
    line_total: Decimal  # BT-106
    allowance_total: Decimal  # BT-107
    tax_exclusive: Decimal  # BT-109
    tax_total: Decimal  # BT-110
    grand_total: Decimal  # BT-112
    payable: Decimal  # BT-115
    payment: Payment | None  # BG-16
    notes: tuple[str, ...] = ()  # BT-22
    preceding: PrecedingInvoice | None = None  # BG-3
    prepaid: Decimal = Decimal(0)  # BT-113: customer credit applied at finalization
    invoice_id: str = ""  # ours, not a business term: which invoice this came from


@dataclass(frozen=True)
class BuyerRouting:
    """What the catalog says about where a customer's e-invoices go (not on the invoice itself).

    ``buyer_reference`` is BT-10 (in Germany the Leitweg-ID); ``peppol_id`` the buyer's Peppol
    participant id, ``scheme:value`` (e.g. ``0088:5798000000001``), used as its electronic
    address (BT-49); without one, ``email`` (a Billing contact) is, with scheme ``EM``.
    """

    buyer_reference: str | None = None
    peppol_id: str | None = None
    email: str | None = None
    city: str | None = None
    postal_code: str | None = None


@dataclass(frozen=True)
class SellerDetails:
    """What the catalog says about the seller beyond the invoice's seller block."""

    city: str | None = None
    postal_code: str | None = None
    peppol_id: str | None = None
    phone: str | None = None


def routing_for(customer: Customer) -> BuyerRouting:
    """The catalog's e-invoice fields of a customer: buyer reference, Peppol id, the first
    Billing contact's e-mail, city and post code."""
    billing = customer.billing_contacts()
    return BuyerRouting(
        buyer_reference=customer.einvoice_buyer_reference,
        peppol_id=customer.peppol_participant_id,
        email=str(billing[0].email) if billing else None,
        city=customer.address.city,
        postal_code=customer.address.postal_code,
    )


def seller_details_for(entity: InvoicingEntity) -> SellerDetails:
    """The catalog's e-invoice fields of an invoicing entity."""
    return SellerDetails(
        city=entity.address.city,
        postal_code=entity.address.postal_code,
        peppol_id=entity.peppol_participant_id,
        phone=entity.phone,
    )


@dataclass(frozen=True)
class CreditNoteDocument:
    """A credit note as issued (``service/settle_invoices.py``): amounts tax included, positive."""

    number: str
    issue_date: date
    amount: Decimal  # what is credited, tax included
    tax: Decimal
    net: Decimal
    reason: str
    void: bool = False


def vat_of(invoice: InvoiceDocument) -> Vat:
    """The invoice's VAT category, from its tax regime (module docstring).

    Our invoices carry one regime (``assemble_invoice`` taxes every line alike); a document with
    several rates cannot say which line bears which and is refused.
    """
    if len(invoice.taxes) != 1:
        msg = f"invoice {invoice.invoice_id}: {len(invoice.taxes)} tax rates, expected one"
        raise EInvoiceError(msg)
    percent = invoice.taxes[0].percent
    if invoice.tax_mention == REVERSE_CHARGE_MENTION:
        return Vat(VatCategory.REVERSE_CHARGE, ZERO, "VATEX-EU-AE", invoice.tax_mention)
    if invoice.tax_mention == OUTSIDE_SCOPE_MENTION:
        return Vat(VatCategory.NOT_SUBJECT, None, "VATEX-EU-O", invoice.tax_mention)
    if percent == 0:
        return Vat(VatCategory.ZERO_RATED, ZERO)
    return Vat(VatCategory.STANDARD, percent)


_IBAN = re.compile(r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)\b")
_BIC = re.compile(r"\bBIC:?\s*([A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?)\b")


def payment_of(methods: Sequence[PaymentMethod], remittance: str, terms: str | None) -> Payment:
    """Payment means from the invoicing entity's methods: the first whose details hold a valid
    IBAN (check digits verified with python-stdnum) is a SEPA credit transfer (58) with that IBAN
    and BIC; otherwise "not defined" (1) with the methods' text."""
    for method in methods:
        found = _IBAN.search(method.details.upper())
        if found and iban.is_valid(found.group(1)):
            bic = _BIC.search(method.details.upper())
            return Payment(
                means_code="58",
                means_text=method.kind,
                remittance=remittance,
                iban=found.group(1).replace(" ", ""),
                bic=bic.group(1) if bic else None,
                terms=terms,
            )
    text = "; ".join(f"{m.kind}: {m.details}" for m in methods) or None
    return Payment(means_code="1", means_text=text, remittance=remittance, terms=terms)


def _party(
    party: Party, vat: Vat, *, city: str | None, postal_code: str | None, seller: bool
) -> EParty:
    vat_id = party.vat_id if vat.category is not VatCategory.NOT_SUBJECT else None
    # BR-O-02 drops the VAT ids of a not-subject invoice; BR-CO-26 still wants the seller
    # identified, by the same number as seller identifier.
    identifier = party.vat_id if seller and vat_id is None else None
    return EParty(
        name=party.name,
        address_lines=tuple(party.address_lines),
        country=party.country,
        vat_id=vat_id,
        identifier=identifier,
        city=city,
        postal_code=postal_code,
        contact_email=party.email,
    )


def _with_address(party: EParty, peppol_id: str | None, email: str | None) -> EParty:
    if peppol_id:
        scheme, _, value = peppol_id.partition(":")
        return replace(party, electronic_address=value, electronic_scheme=scheme)
    if email:
        return replace(party, electronic_address=email, electronic_scheme="EM")
    return party


def _parties(
    invoice: InvoiceDocument, vat: Vat, routing: BuyerRouting, seller_details: SellerDetails
) -> tuple[EParty, EParty]:
    seller = _party(
        invoice.seller,
        vat,
        city=seller_details.city,
        postal_code=seller_details.postal_code,
        seller=True,
    )
    seller = replace(seller, contact_phone=seller_details.phone)
    seller = _with_address(seller, seller_details.peppol_id, invoice.seller.email)
    buyer = _party(
        invoice.buyer, vat, city=routing.city, postal_code=routing.postal_code, seller=False
    )
    buyer = replace(buyer, contact_email=routing.email)
    buyer = _with_address(buyer, routing.peppol_id, routing.email)
    return seller, buyer


def _line(
    line_id: int, name: str, amount: Decimal, vat: Vat, span: tuple[date, date] | None = None
) -> ELine:
    return ELine(
        line_id=str(line_id),
        name=name,
        quantity=Decimal(-1) if amount < 0 else Decimal(1),
        unit=UNIT_ONE,
        net_price=abs(amount),
        net_amount=amount,
        vat=vat,
        period_start=span[0] if span else None,
        period_end=span[1] if span else None,
    )


def _line_period(line: InvoiceLine) -> tuple[date, date] | None:
    """A prorated subscription line's span (its days of the invoice period) as its line period
    (BG-26); every other line is for the invoice period (BG-14) and states none."""
    if line.prorated and line.first_day is not None and line.last_day is not None:
        return line.first_day, line.last_day
    return None


def einvoice_from_invoice(
    invoice: InvoiceDocument,
    routing: BuyerRouting | None = None,
    seller_details: SellerDetails | None = None,
) -> EInvoice:
    """Map a finalized invoice to EN 16931 (module docstring; table in ``docs/einvoice.md``).

    The amounts are the invoice's own: printed line amounts, subtotal, tax per rate, total.
    """
    routing = routing or BuyerRouting()
    if invoice.number is None or invoice.issue_date is None:
        msg = f"invoice {invoice.invoice_id} is not finalized: it has no number or issue date"
        raise EInvoiceError(msg)
    vat = vat_of(invoice)
    lines, allowances = _lines_and_allowances(invoice, vat)
    line_total = sum((line.net_amount for line in lines), ZERO)
    allowance_total = sum((a.amount for a in allowances), ZERO)
    if line_total - allowance_total != invoice.subtotal:
        msg = (
            f"invoice {invoice.number}: lines {line_total} less allowances {allowance_total} "
            f"differ from the subtotal {invoice.subtotal}"
        )
        raise EInvoiceError(msg)
    breakdown = tuple(VatBreakdown(vat=vat, taxable=t.base, tax=t.tax) for t in invoice.taxes)
    if sum((b.tax for b in breakdown), ZERO) != invoice.tax:
        msg = f"invoice {invoice.number}: the tax per rate does not add up to {invoice.tax}"
        raise EInvoiceError(msg)
    start, end = period_bounds(invoice.period)
    seller, buyer = _parties(invoice, vat, routing, seller_details or SellerDetails())
    terms = f"Payment due by {invoice.due_date.isoformat()}." if invoice.due_date else None
    notes = tuple(n for n in (invoice.tax_mention,) if n)
    return EInvoice(
        type_code=DocumentType.INVOICE,
        number=invoice.number,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        currency=invoice.currency,
        buyer_reference=routing.buyer_reference or invoice.customer_id,
        period_start=start,
        period_end=end,
        seller=seller,
        buyer=buyer,
        lines=tuple(lines),
        allowances=tuple(allowances),
        vat_breakdown=breakdown,
        line_total=line_total,
        allowance_total=allowance_total,
        tax_exclusive=invoice.subtotal,
        tax_total=invoice.tax,
        grand_total=invoice.total,
        payable=invoice.total - invoice.credit_applied,  # BT-115 = BT-112 - BT-113
        prepaid=invoice.credit_applied,
        payment=payment_of(invoice.payment_methods, invoice.number, terms),
        notes=notes,
        invoice_id=invoice.invoice_id,
    )


def _lines_and_allowances(
    invoice: InvoiceDocument, vat: Vat
) -> tuple[list[ELine], list[EAllowance]]:
    """The invoice's lines as EN 16931 lines, except included infrastructure netted against
    the charges, which is a document-level allowance; an invoice of no line states one line
    of zero (BR-16 wants at least one)."""
    lines: list[ELine] = []
    allowances: list[EAllowance] = []
    for line in invoice.lines:
        if line.kind is LineKind.INCLUDED and line.amount < 0:
            allowances.append(EAllowance(amount=-line.amount, reason=line.description, vat=vat))
        elif line.amount or line.kind is not LineKind.INCLUDED:
            lines.append(
                _line(len(lines) + 1, line.description, line.amount, vat, _line_period(line))
            )
    if not lines:
        lines.append(_line(1, "No charges in the period", ZERO, vat))
    return lines, allowances


def einvoice_from_credit_note(
    invoice: InvoiceDocument,
    note: CreditNoteDocument,
    routing: BuyerRouting | None = None,
    seller_details: SellerDetails | None = None,
) -> EInvoice:
    """Map a credit note on ``invoice`` to EN 16931: type 381, referencing the invoice (BG-3).

    One line, the credited net amount, in the invoice's VAT category; the tax is the credit
    note's own (the invoice's proportion, rounded once when it was issued).
    """
    routing = routing or BuyerRouting()
    if invoice.number is None:
        msg = f"invoice {invoice.invoice_id} has no number: nothing can be credited on it"
        raise EInvoiceError(msg)
    if note.net + note.tax != note.amount:
        msg = f"credit note {note.number}: net {note.net} + tax {note.tax} != {note.amount}"
        raise EInvoiceError(msg)
    vat = vat_of(invoice)
    start, end = period_bounds(invoice.period)
    what = "Cancellation" if note.void else "Credit"
    line = _line(1, f"{what} of invoice {invoice.number}: {note.reason}", note.net, vat)
    seller, buyer = _parties(invoice, vat, routing, seller_details or SellerDetails())
    return EInvoice(
        type_code=DocumentType.CREDIT_NOTE,
        number=note.number,
        issue_date=note.issue_date,
        due_date=None,
        currency=invoice.currency,
        buyer_reference=routing.buyer_reference or invoice.customer_id,
        period_start=start,
        period_end=end,
        seller=seller,
        buyer=buyer,
        lines=(line,),
        allowances=(),
        vat_breakdown=(VatBreakdown(vat=vat, taxable=note.net, tax=note.tax),),
        line_total=note.net,
        allowance_total=ZERO,
        tax_exclusive=note.net,
        tax_total=note.tax,
        grand_total=note.amount,
        payable=note.amount,
        # BR-CO-25: an amount due (here, to the buyer) states its terms
        payment=payment_of(
            invoice.payment_methods,
            note.number,
            f"Credited on invoice {invoice.number}: deducted from what it owes; "
            "any amount already paid beyond that is refunded or kept as customer credit.",
        ),
        # one note: Peppol allows no more than one (PEPPOL-EN16931-R002)
        notes=(" ".join(n for n in (note.reason, invoice.tax_mention) if n),),
        preceding=PrecedingInvoice(invoice.number, invoice.issue_date),
        invoice_id=invoice.invoice_id,
    )
