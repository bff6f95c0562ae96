"""Issued invoices and credit notes by number, for e-invoices (``service/einvoices.py``)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters.settlement_repo import CREDIT_NOTES, MongoSettlementRepository

Doc = dict[str, Any]


class MongoIssuedDocuments:
    """Reads the stored invoices (through the settlement repository) and credit notes."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._settlements = MongoSettlementRepository(db)
        self._credit_notes = db[CREDIT_NOTES]

    async def invoice_by_number(self, number: str) -> Doc | None:
        """The stored invoice (None if no invoice has that number)."""
        return await self._settlements.invoice_by_number(number)

    async def credit_note_by_number(self, number: str) -> Doc | None:
        """The stored credit note (None if none has that number): one request, one read."""
        return await self._credit_notes.find_one({"number": number})
