"""Issued invoices and credit notes by number, for e-invoices (``service/einvoices.py``)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters.settlement_repo import CREDIT_NOTES, MongoSettlementRepository
from billing_invoicing.adapters.stored_rows import credit_note_row_of, invoice_row_of
from billing_invoicing.domain.stored import CreditNoteRow, InvoiceRow

Doc = dict[str, Any]


class MongoIssuedDocuments:
    """Reads the stored invoices (through the settlement repository) and credit notes."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._settlements = MongoSettlementRepository(db)
        self._credit_notes = db[CREDIT_NOTES]

    async def invoice_by_number(self, number: str) -> InvoiceRow | None:
        """The stored invoice (None if no invoice has that number)."""
        doc = await self._settlements.invoice_by_number(number)
        return None if doc is None else invoice_row_of(doc)

    async def credit_note_by_number(self, number: str) -> CreditNoteRow | None:
        """The stored credit note (None if none has that number): one request, one read."""
        doc = await self._credit_notes.find_one({"number": number})
        return None if doc is None else credit_note_row_of(doc)
