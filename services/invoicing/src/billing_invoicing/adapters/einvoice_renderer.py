"""The invoice and credit-note PDF ports, per customer: Factur-X for those who receive it, else
the plain PDF.

A customer whose catalog ``einvoice`` lists ``facturx`` gets, as *the* invoice PDF (stored by
invoicing, attached by notify, served by ``/v1/invoices/{number}/pdf``), the PDF/A-3b carrying its
CII XML: the Factur-X replaces the plain PDF, it does not travel beside it. The close use case
does not know the difference; this adapter stands where it expects a renderer.

An invoice that cannot be expressed as EN 16931 (``EInvoiceError``: e.g. several VAT rates)
is still issued, with the plain PDF, and the reason is logged: an invoice is never held back
for its structured twin, which the API then refuses with the same reason.

The Factur-X bytes are not reproducible like the plain PDF's: the ``factur-x`` package stamps
the embedding time into the PDF's modification date and XMP metadata.
"""

from __future__ import annotations

import logging

from billing_catalog.models import EInvoiceFormat
from billing_invoicing.adapters.einvoice import EInvoiceFormatError, cii_xml
from billing_invoicing.domain.einvoice import (
    CreditNoteDocument,
    EInvoiceError,
    einvoice_from_credit_note,
    einvoice_from_invoice,
    routing_for,
    seller_details_for,
)
from billing_invoicing.domain.invoice import InvoiceDocument
from billing_invoicing.ports import CatalogReading, InvoicePdfRendering

log = logging.getLogger(__name__)


class CustomerPdfRenderer:
    """Renders each invoice as its customer receives it (module docstring)."""

    def __init__(self, renderer: InvoicePdfRendering, catalog: CatalogReading) -> None:
        self._renderer = renderer
        self._catalog = catalog

    async def render(self, invoice: InvoiceDocument) -> bytes:
        """The Factur-X PDF for a customer who receives it, else the plain PDF."""
        customer = await self._catalog.customer(invoice.customer_id)
        if customer is None or EInvoiceFormat.FACTURX not in customer.einvoice:
            return await self._renderer.render(invoice)
        entity = await self._catalog.invoicing_entity(invoice.invoicing_entity_id)
        try:
            document = einvoice_from_invoice(
                invoice, routing_for(customer), seller_details_for(entity) if entity else None
            )
            xml = cii_xml(document)
        except (EInvoiceError, EInvoiceFormatError) as exc:
            log.warning(
                "invoice %s: issued with the plain PDF, no Factur-X: %s", invoice.number, exc
            )
            return await self._renderer.render(invoice)
        return await self._renderer.render_facturx(invoice, xml)

    async def render_credit_note(self, invoice: InvoiceDocument, note: CreditNoteDocument) -> bytes:
        """A credit note as its customer receives its invoices: Factur-X (type 381, carrying
        its CII) for a customer who receives Factur-X, else the plain PDF; a credit note with
        no EN 16931 form is issued with the plain PDF and the reason logged."""
        customer = await self._catalog.customer(invoice.customer_id)
        if customer is None or EInvoiceFormat.FACTURX not in customer.einvoice:
            return await self._renderer.render_credit_note(invoice, note)
        entity = await self._catalog.invoicing_entity(invoice.invoicing_entity_id)
        try:
            document = einvoice_from_credit_note(
                invoice, note, routing_for(customer), seller_details_for(entity) if entity else None
            )
            xml = cii_xml(document)
        except (EInvoiceError, EInvoiceFormatError) as exc:
            log.warning(
                "credit note %s: issued with the plain PDF, no Factur-X: %s", note.number, exc
            )
            return await self._renderer.render_credit_note(invoice, note)
        return await self._renderer.render_credit_note_facturx(invoice, note, xml)
