"""Use case: a credit note's PDF, rendered and stored when the credit note is issued.

Like an invoice's, the PDF is stored once (the invoice PDF store, keyed by the credit note's
id: the first stored wins, so a retried issue finds it) and named in ``CreditNoteIssued``
(``pdf_file_id``, ``pdf_sha256``), from which notify attaches it to the credit-note email. A
customer who receives Factur-X gets the credit note as Factur-X (PDF/A-3b carrying its CII
XML, type 381), the way its invoices are issued (``adapters/einvoice_renderer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from billing_invoicing.adapters.settlement_repo import amount_of
from billing_invoicing.domain.einvoice import CreditNoteDocument
from billing_invoicing.domain.invoice import InvoiceDocument
from billing_invoicing.domain.settlement import CreditNoteRecord
from billing_invoicing.domain.stored import CreditNoteRow, InvoiceRow
from billing_invoicing.ports import CreditNoteRendering, PdfStorage, StoredDocument


@dataclass(frozen=True)
class CreditNotePdfPorts:
    """What storing a credit note's PDF needs: the renderer and the invoice PDF store."""

    renderer: CreditNoteRendering
    pdfs: PdfStorage


def issued_invoice(row: InvoiceRow) -> InvoiceDocument:
    """The finalized invoice's document from its stored row (its number and issue date are
    kept on the row, and older documents carry them only there)."""
    invoice = InvoiceDocument.model_validate(row.document)
    if invoice.number is None or invoice.issue_date is None:
        invoice = invoice.model_copy(
            update={"number": str(row.number), "issue_date": row.issue_date}
        )
    return invoice


def credit_note_document(note: CreditNoteRow, currency: str) -> CreditNoteDocument:
    """A credit note as stored (``invoicing_credit_notes``), as the documents show it."""
    return CreditNoteDocument(
        number=note.number,
        issue_date=note.issue_date,
        amount=amount_of(note.amount_units, currency),
        tax=amount_of(note.tax_units, currency),
        net=amount_of(note.net_units, currency),
        reason=note.reason,
        void=note.void,
    )


def credit_note_of(note: CreditNoteRecord) -> CreditNoteDocument:
    """A credit note as recorded, as the documents show it."""
    return CreditNoteDocument(
        number=note.number,
        issue_date=note.issue_date,
        amount=note.amount,
        tax=note.tax,
        net=note.net,
        reason=note.reason,
        void=note.void,
    )


async def store_credit_note_pdf(
    ports: CreditNotePdfPorts, invoice: InvoiceDocument, note: CreditNoteDocument, note_id: str
) -> StoredDocument:
    """Render the credit note on ``invoice`` and store it under ``note_id`` (once: a retry
    gets the PDF stored first, which is the one the event names)."""
    pdf = await ports.renderer.render_credit_note(invoice, note)
    return await ports.pdfs.save(invoice_id=note_id, number=note.number, pdf=pdf)
