"""Use case: an issued invoice or credit note as an EN 16931 e-invoice (docs/einvoice.md).

Any format is available for any finalized invoice, whatever the customer receives by email:
the CLI (``billing invoices einvoice NUMBER --format F``) and the API
(``GET /v1/invoices/{number}/einvoice?format=F``) both call :func:`einvoice_file`. The document
is made from the stored invoice and the catalog's current e-invoice fields (buyer reference,
Peppol id, addresses); the amounts are the stored invoice's.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing_catalog.models import Customer, EInvoiceFormat, InvoicingEntity
from billing_invoicing.adapters.einvoice import EInvoiceFormatError, einvoice_xml
from billing_invoicing.domain.access import Scope
from billing_invoicing.domain.einvoice import (
    CreditNoteDocument,
    EInvoice,
    EInvoiceError,
    einvoice_from_credit_note,
    einvoice_from_invoice,
    routing_for,
    seller_details_for,
)
from billing_invoicing.domain.invoice import InvoiceDocument
from billing_invoicing.ports import CatalogReading, FacturxRendering, IssuedDocuments
from billing_invoicing.service.credit_note_documents import credit_note_document, issued_invoice
from billing_invoicing.service.settle_invoices import InvoiceNotFoundError

MEDIA_TYPES = {
    EInvoiceFormat.FACTURX: "application/pdf",
    EInvoiceFormat.XRECHNUNG: "application/xml",
    EInvoiceFormat.PEPPOL: "application/xml",
}


@dataclass
class EInvoicePorts:
    """What the use case needs."""

    catalog: CatalogReading
    documents: IssuedDocuments
    renderer: FacturxRendering


@dataclass(frozen=True)
class EInvoiceFile:
    """An e-invoice ready to download or attach."""

    name: str
    media_type: str
    content: bytes


class EInvoiceUnavailableError(LookupError):
    """The document exists but not in the format asked for (the message says why)."""


async def _catalog_details(
    ports: EInvoicePorts, invoice: InvoiceDocument
) -> tuple[Customer | None, InvoicingEntity | None]:
    customer = await ports.catalog.customer(invoice.customer_id)
    entity = await ports.catalog.invoicing_entity(invoice.invoicing_entity_id)
    return customer, entity


async def einvoice_of(
    ports: EInvoicePorts, scope: Scope, number: str
) -> tuple[EInvoice, InvoiceDocument, CreditNoteDocument | None]:
    """The EN 16931 model of the invoice or credit note ``number``, the invoice it is (or
    credits), and the credit note if it is one."""
    row = await ports.documents.invoice_by_number(number)
    note = None
    if row is None:
        note = await ports.documents.credit_note_by_number(number)
        if note is not None:
            row = await ports.documents.invoice_by_number(note.invoice_number)
    if row is None or not scope.may_see(row.customer_id):
        # another customer's is answered like a number never issued, naming no one
        msg = f"no invoice or credit note {number!r}"
        raise InvoiceNotFoundError(msg)
    if row.document is None or row.number is None:
        msg = f"invoice {number} is not finalized yet: it has no e-invoice"
        raise EInvoiceUnavailableError(msg)
    invoice = issued_invoice(row)
    customer, entity = await _catalog_details(ports, invoice)
    routing = routing_for(customer) if customer else None
    seller = seller_details_for(entity) if entity else None
    if note is None:
        return einvoice_from_invoice(invoice, routing, seller), invoice, None
    credit = credit_note_document(note, invoice.currency)
    return einvoice_from_credit_note(invoice, credit, routing, seller), invoice, credit


async def einvoice_file(
    ports: EInvoicePorts, scope: Scope, number: str, fmt: EInvoiceFormat
) -> EInvoiceFile:
    """The invoice or credit note ``number`` in ``fmt``: the XML, or for Factur-X the PDF/A-3
    carrying it (rendered on request, for any customer; the PDF a customer was sent is the
    stored one)."""
    document, invoice, credit = await einvoice_of(ports, scope, number)
    try:
        xml = einvoice_xml(document, fmt)
    except (EInvoiceError, EInvoiceFormatError) as exc:
        raise EInvoiceUnavailableError(str(exc)) from exc
    if fmt is not EInvoiceFormat.FACTURX:
        return EInvoiceFile(f"{document.number}-{fmt.value}.xml", MEDIA_TYPES[fmt], xml)
    if credit is not None:
        pdf = await ports.renderer.render_credit_note_facturx(invoice, credit, xml)
    else:
        pdf = await ports.renderer.render_facturx(invoice, xml)
    return EInvoiceFile(f"{document.number}-facturx.pdf", MEDIA_TYPES[fmt], pdf)
