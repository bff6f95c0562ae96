"""Payments, credit notes and customer credit in MongoDB / FerretDB.

No transactions (FerretDB has none): each step is one single-document write that is safe to
repeat, so a command that crashed half-way is finished by running it again.

1. The payment (or credit note) is inserted under a deterministic ``_id``: a retry finds it.
2. It is applied to its invoice by one atomic update that adds the amount (``$inc``) and the id
   (``$push``) only if the id is not there yet (``{"payment_ids": {"$ne": id}}``): a retry adds
   nothing.
3. The invoice's status and outstanding amount are recomputed from its sums and written with a
   condition on the sums read, so a concurrent payment's later write is never overwritten by an
   older view.
4. Overpayment becomes customer credit: one document per payment that caused it
   (``overpayment:<payment id>``), so that the credits of an invoice add up to its overpayment.

Money is stored as integers of the currency's unit (``*_units``, ``domain/units.py``), like
everything else.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from billing_invoicing.adapters.invoice_repo import CUSTOMER_CREDITS as CREDITS
from billing_invoicing.adapters.invoice_repo import INVOICES
from billing_invoicing.domain.settlement import Settlement
from billing_invoicing.domain.units import from_units, to_units
from billing_schemas.money import round_to_minor

PAYMENTS = "invoicing_payments"
CREDIT_NOTES = "invoicing_credit_notes"
CUSTOMER_CREDITS = CREDITS  # invoicing records a negative invoice's credit there too

Doc = dict[str, Any]


def amount_of(units: Any, currency: str) -> Decimal:
    """Stored units as an amount in the currency's minor units (``119.00``, not
    ``119.000000000``): everything settled is a whole number of minor units already."""
    return round_to_minor(from_units(int(units or 0), currency), currency)


def settlement_of(doc: Doc) -> Settlement:
    """An invoice document's standing."""
    currency = str(doc["currency"])
    return Settlement(
        total=amount_of(doc.get("total_units"), currency),
        paid=amount_of(doc.get("paid_units"), currency),
        credited=amount_of(doc.get("credited_units"), currency),
        voided=doc.get("voided_at") is not None,
        overdue=doc.get("overdue_since") is not None,
    )


class MongoSettlementRepository:
    """What was paid and credited against finalized invoices."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._invoices = db[INVOICES]
        self._payments = db[PAYMENTS]
        self._credit_notes = db[CREDIT_NOTES]
        self._credits = db[CUSTOMER_CREDITS]

    async def ensure_indexes(self) -> None:
        """Indexes the queries here use (idempotent)."""
        await self._payments.create_index([("invoice_id", ASCENDING)])
        await self._credit_notes.create_index([("invoice_id", ASCENDING)])
        await self._credits.create_index([("customer_id", ASCENDING)])
        await self._invoices.create_index([("number", ASCENDING)])

    async def invoice_by_number(self, number: str) -> Doc | None:
        """A finalized invoice by its number (or its id, ``customer:period``)."""
        return await self._invoices.find_one({"$or": [{"number": number}, {"_id": number}]})

    async def insert_once(self, collection: str, doc: Doc) -> tuple[Doc, bool]:
        """Insert ``doc`` under its ``_id``; return the stored one and whether it is new."""
        target = self._payments if collection == PAYMENTS else self._credit_notes
        try:
            await target.insert_one(doc)
        except DuplicateKeyError:
            stored = await target.find_one({"_id": doc["_id"]})
            assert stored is not None
            return stored, False
        return doc, True

    async def apply(
        self, invoice_id: str, *, field: str, ids_field: str, item_id: str, units: int
    ) -> None:
        """Add ``units`` to the invoice's ``field`` once for ``item_id`` (one atomic update)."""
        await self._invoices.update_one(
            {"_id": invoice_id, ids_field: {"$ne": item_id}},
            {"$inc": {field: units}, "$push": {ids_field: item_id}},
        )

    async def mark(self, invoice_id: str, fields: Doc) -> None:
        """Set fields on an invoice that are not set yet (``voided_at``, ``overdue_since``)."""
        for name, value in fields.items():
            await self._invoices.update_one(
                {"_id": invoice_id, name: None}, {"$set": {name: value}}
            )

    async def refresh(self, invoice_id: str) -> tuple[Doc, Settlement]:
        """Write the status and outstanding amount that follow from the invoice's sums."""
        for _ in range(10):
            doc = await self._invoices.find_one({"_id": invoice_id})
            assert doc is not None
            standing = settlement_of(doc)
            currency = str(doc["currency"])
            result = await self._invoices.update_one(
                {
                    "_id": invoice_id,
                    "paid_units": doc.get("paid_units"),
                    "credited_units": doc.get("credited_units"),
                },
                {
                    "$set": {
                        "status": standing.status.value,
                        "outstanding_units": to_units(standing.outstanding, currency),
                        "settled_at": datetime.now(UTC),
                    }
                },
            )
            if result.matched_count:
                doc.update(
                    status=standing.status.value,
                    outstanding_units=to_units(standing.outstanding, currency),
                )
                return doc, standing
        msg = f"invoice {invoice_id}: its payments keep changing; try again"
        raise RuntimeError(msg)

    async def record_overpayment(self, doc: Doc, standing: Settlement, cause: str) -> int:
        """Make the invoice's customer credits add up to its overpayment; return units added."""
        wanted = to_units(standing.overpaid, str(doc["currency"]))
        have = 0
        async for c in self._credits.find({"invoice_id": doc["_id"]}, {"amount_units": 1}):
            have += int(c["amount_units"])
        if wanted <= have:
            return 0
        added = wanted - have
        try:
            await self._credits.insert_one(
                {
                    "_id": f"overpayment:{cause}",
                    "customer_id": doc["customer_id"],
                    "invoice_id": doc["_id"],
                    "invoice_number": doc.get("number"),
                    "currency": doc.get("currency"),
                    "amount_units": added,
                    "reason": f"overpayment of invoice {doc.get('number')}",
                    "recorded_at": datetime.now(UTC),
                }
            )
        except DuplicateKeyError:
            return 0  # this cause's credit is recorded already
        return added

    async def customer_credit(self, customer_id: str) -> dict[str, int]:
        """The customer's credit balance per currency, in units."""
        balance: dict[str, int] = {}
        async for c in self._credits.find({"customer_id": customer_id}):
            balance[c["currency"]] = balance.get(c["currency"], 0) + int(c["amount_units"])
        return balance

    async def payments_of(self, invoice_id: str) -> list[Doc]:
        """The invoice's payments, oldest first."""
        cursor = self._payments.find({"invoice_id": invoice_id}).sort("recorded_at", ASCENDING)
        return [d async for d in cursor]

    async def credit_notes_of(self, invoice_id: str) -> list[Doc]:
        """The invoice's credit notes, oldest first."""
        cursor = self._credit_notes.find({"invoice_id": invoice_id}).sort("number", ASCENDING)
        return [d async for d in cursor]

    async def outstanding_after(self, payment_id: str, units: int) -> int:
        """The payment's ``outstanding_after_units``: set to ``units`` if not set yet."""
        await self._payments.update_one(
            {"_id": payment_id, "outstanding_after_units": None},
            {"$set": {"outstanding_after_units": units}},
        )
        doc = await self._payments.find_one({"_id": payment_id}, {"outstanding_after_units": 1})
        assert doc is not None
        return int(doc["outstanding_after_units"])

    async def mark_published(self, collection: str, item_id: str) -> None:
        """Remember that the item's event was acknowledged by the broker."""
        target = self._payments if collection == PAYMENTS else self._credit_notes
        await target.update_one({"_id": item_id}, {"$set": {"published_at": datetime.now(UTC)}})

    async def open_invoices_due_before(self, as_of: date) -> list[Doc]:
        """Finalized invoices not paid or void whose due date is before ``as_of``."""
        cursor = self._invoices.find(
            {
                "status": {"$in": ["finalized", "partially_paid", "overdue"]},
                "due_date": {"$lt": as_of.isoformat()},
            }
        ).sort("_id", ASCENDING)
        return [d async for d in cursor]
