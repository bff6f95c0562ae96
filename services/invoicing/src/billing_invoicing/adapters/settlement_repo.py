"""Payments, credit notes and the customers' credit ledger in MongoDB / FerretDB
(:class:`~billing_invoicing.ports.SettlementRecords`).

Each is a document of its own, inserted once under a deterministic ``_id`` (a retry finds it)
and never edited afterwards except for the marks a retry needs (``published_at``, a payment's
``outstanding_after_units``). What they do to an invoice is the ``Invoice`` aggregate's business
(``domain/model.py``), written by the invoice repository alone.

The credit ledger is one document per entry (``invoicing_customer_credits``); beside it each
customer has one summary document in ``invoicing_credit_balances`` (``_id``: the customer id)
holding ``(entry id, currency, units)`` of every entry, added with ``$addToSet`` after the
entry is inserted, whether the insert was new or a retry's: so the summary has every entry
exactly once, and the close reads a customer's balance with one look-up by ``_id`` (the only
filter FerretDB's SQLite backend answers itself) however long the ledger grows.

An invoice's payments and credit notes are found by ``_id`` too (its dues read them on every
"Pay this invoice"): each record, once inserted, is listed under its invoice in
``invoicing_settlement_slots`` as ``<kind>:<invoice id>:<n>`` (``n`` = 0, 1, ...), taken by an
insert in the first free slot (a writer that loses a slot to another takes the next one, so no
document is ever updated by two writers). A reader reads slot after slot until one is missing.
The listing is done after the record's insert, by the retry too: a crash in between leaves a
record unlisted until its retry, as it leaves the invoice without its effect.

Money is stored as integers of the currency's unit (``*_units``, ``domain/units.py``), like
everything else.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from billing_invoicing.adapters.invoice_keys import InvoiceKeys
from billing_invoicing.adapters.invoice_repo import CREDIT_BALANCES, INVOICES
from billing_invoicing.adapters.invoice_repo import CUSTOMER_CREDITS as CREDITS
from billing_invoicing.domain.credit import CreditEntry, CreditKind
from billing_invoicing.domain.settlement import CreditNoteRecord, PaymentRecord
from billing_invoicing.domain.units import from_units, to_units
from billing_schemas.money import round_to_minor

PAYMENTS = "invoicing_payments"
CREDIT_NOTES = "invoicing_credit_notes"
CUSTOMER_CREDITS = CREDITS  # invoicing records a negative invoice's credit there too
SETTLEMENT_SLOTS = "invoicing_settlement_slots"
_LISTED = "listed"

Doc = dict[str, Any]


def amount_of(units: Any, currency: str) -> Decimal:
    """Stored units as an amount in the currency's minor units (``119.00``, not
    ``119.000000000``): everything settled is a whole number of minor units already."""
    return round_to_minor(from_units(int(units or 0), currency), currency)


def payment_document(p: PaymentRecord) -> Doc:
    """A payment as stored."""
    return {
        "_id": p.payment_id,
        "invoice_id": p.invoice_id,
        "invoice_number": p.invoice_number,
        "customer_id": p.customer_id,
        "amount_units": to_units(p.amount, p.currency),
        "currency": p.currency,
        "method": p.method,
        "reference": p.reference,
        "paid_on": p.paid_on.isoformat(),
        "recorded_at": datetime.now(UTC),
    }


def payment_of(doc: Doc) -> PaymentRecord:
    """A stored payment."""
    currency = str(doc["currency"])
    after = doc.get("outstanding_after_units")
    return PaymentRecord(
        payment_id=str(doc["_id"]),
        invoice_id=str(doc["invoice_id"]),
        invoice_number=str(doc["invoice_number"]),
        customer_id=str(doc["customer_id"]),
        amount=amount_of(doc["amount_units"], currency),
        currency=currency,
        method=str(doc["method"]),
        reference=str(doc["reference"]),
        paid_on=date.fromisoformat(str(doc["paid_on"])),
        outstanding_after=None if after is None else amount_of(after, currency),
        published=doc.get("published_at") is not None,
    )


def credit_note_document(n: CreditNoteRecord) -> Doc:
    """A credit note as stored."""
    return {
        "_id": n.credit_note_id,
        "number": n.number,
        "invoice_id": n.invoice_id,
        "invoice_number": n.invoice_number,
        "customer_id": n.customer_id,
        "currency": n.currency,
        "amount_units": to_units(n.amount, n.currency),
        "tax_units": to_units(n.tax, n.currency),
        "net_units": to_units(n.net, n.currency),
        "reason": n.reason,
        "void": n.void,
        "issue_date": n.issue_date.isoformat(),
    }


def credit_note_of(doc: Doc) -> CreditNoteRecord:
    """A stored credit note."""
    currency = str(doc["currency"])
    return CreditNoteRecord(
        credit_note_id=str(doc["_id"]),
        number=str(doc["number"]),
        invoice_id=str(doc["invoice_id"]),
        invoice_number=str(doc["invoice_number"]),
        customer_id=str(doc["customer_id"]),
        currency=currency,
        amount=amount_of(doc["amount_units"], currency),
        tax=amount_of(doc.get("tax_units"), currency),
        net=amount_of(doc.get("net_units"), currency),
        reason=str(doc["reason"]),
        void=bool(doc.get("void")),
        issue_date=date.fromisoformat(str(doc["issue_date"])),
        published=doc.get("published_at") is not None,
    )


def credit_document(e: CreditEntry) -> Doc:
    """A credit ledger entry as stored."""
    return {
        "_id": e.entry_id,
        "customer_id": e.customer_id,
        "invoice_id": e.invoice_id,
        "invoice_number": e.invoice_number,
        "currency": e.currency,
        "amount_units": to_units(e.amount, e.currency),
        "kind": e.kind.value,
        "reason": e.reason,
        "recorded_at": e.recorded_at or datetime.now(UTC),
    }


def _kind_of(doc: Doc) -> CreditKind:
    kind = doc.get("kind")
    if kind is not None:
        return CreditKind(kind)
    # entries recorded before kinds were stored: their id says what caused them
    prefix = str(doc["_id"]).split(":", 1)[0]
    return CreditKind.NEGATIVE_TOTAL if prefix == "negative-total" else CreditKind.OVERPAYMENT


def credit_of(doc: Doc) -> CreditEntry:
    """A stored credit ledger entry."""
    currency = str(doc["currency"])
    recorded = doc.get("recorded_at")
    return CreditEntry(
        entry_id=str(doc["_id"]),
        customer_id=str(doc["customer_id"]),
        currency=currency,
        amount=amount_of(doc["amount_units"], currency),
        kind=_kind_of(doc),
        reason=str(doc.get("reason") or ""),
        invoice_id=doc.get("invoice_id"),
        invoice_number=doc.get("invoice_number"),
        recorded_at=recorded if isinstance(recorded, datetime) else None,
    )


async def _insert_once(target: AsyncCollection[Doc], doc: Doc) -> tuple[Doc, bool]:
    try:
        await target.insert_one(doc)
    except DuplicateKeyError:
        stored = await target.find_one({"_id": doc["_id"]})
        assert stored is not None
        return stored, False
    return doc, True


class MongoSettlementRepository:
    """Payments, credit notes and customer credit (see the module docstring); also finds a
    stored invoice document by number for the read side (queries, e-invoices)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._invoices = db[INVOICES]
        self._keys = InvoiceKeys(db, INVOICES)
        self._payments = db[PAYMENTS]
        self._credit_notes = db[CREDIT_NOTES]
        self._credits = db[CUSTOMER_CREDITS]
        self._balances = db[CREDIT_BALANCES]
        self._slots = db[SETTLEMENT_SLOTS]

    async def ensure_indexes(self) -> None:
        """Indexes the queries here use (idempotent), and the slots of the payments and credit
        notes recorded before they were kept (once)."""
        await self._payments.create_index([("invoice_id", ASCENDING)])
        await self._credit_notes.create_index([("invoice_id", ASCENDING)])
        await self._credits.create_index([("customer_id", ASCENDING)])
        await self._invoices.create_index([("number", ASCENDING)])
        await self.list_recorded()

    async def list_recorded(self) -> int:
        """List every stored payment and credit note under its invoice (one read of them all),
        unless done before; how many were listed now."""
        if await self._slots.find_one({"_id": _LISTED}) is not None:
            return 0
        count = 0
        for kind, records, order in (
            ("payment", self._payments, "recorded_at"),
            ("credit_note", self._credit_notes, "number"),
        ):
            async for doc in records.find({}, {"invoice_id": 1, order: 1}).sort(order, ASCENDING):
                await self._list(kind, str(doc["invoice_id"]), str(doc["_id"]))
                count += 1
        await self._slots.update_one({"_id": _LISTED}, {"$set": {"count": count}}, upsert=True)
        return count

    async def _listed(self, kind: str, invoice_id: str) -> list[str]:
        """The ids listed under the invoice, slot after slot (one ``_id`` look-up each)."""
        ids: list[str] = []
        while slot := await self._slots.find_one({"_id": f"{kind}:{invoice_id}:{len(ids)}"}):
            ids.append(str(slot["record_id"]))
        return ids

    async def _list(self, kind: str, invoice_id: str, record_id: str) -> None:
        """List a record under its invoice once, in the first free slot."""
        listed = await self._listed(kind, invoice_id)
        while record_id not in listed:
            slot = {"_id": f"{kind}:{invoice_id}:{len(listed)}", "record_id": record_id}
            try:
                await self._slots.insert_one(slot)
            except DuplicateKeyError:  # taken by another record at once: look again
                listed = await self._listed(kind, invoice_id)
            else:
                return

    async def _records(
        self, kind: str, records: AsyncCollection[Doc], invoice_id: str
    ) -> list[Doc]:
        ids = await self._listed(kind, invoice_id)
        found = await asyncio.gather(*(records.find_one({"_id": i}) for i in ids))
        return [d for d in found if d is not None]

    async def invoice_by_number(self, number: str) -> Doc | None:
        """A stored invoice document by its number (or its id, ``customer:period``), for
        reading only (by ``_id``, else the number's key: ``adapters/invoice_keys.py``)."""
        doc = await self._invoices.find_one({"_id": number})
        if doc is None and (invoice_id := await self._keys.invoice_id_of(number)) is not None:
            doc = await self._invoices.find_one({"_id": invoice_id})
        return doc

    async def add_payment(self, payment: PaymentRecord) -> tuple[PaymentRecord, bool]:
        """Record the payment once under its id."""
        stored, new = await _insert_once(self._payments, payment_document(payment))
        await self._list("payment", str(stored["invoice_id"]), str(stored["_id"]))
        return payment_of(stored), new

    async def payments_of(self, invoice_id: str) -> list[PaymentRecord]:
        """The invoice's payments, oldest first (its slots, then each by ``_id``)."""
        docs = await self._records("payment", self._payments, invoice_id)
        docs.sort(key=lambda d: (d["recorded_at"], d["_id"]))
        return [payment_of(d) for d in docs]

    async def fix_outstanding_after(self, payment_id: str, amount: Decimal) -> Decimal:
        """Set the payment's ``outstanding_after`` unless it is set; return the one stored."""
        doc = await self._payments.find_one({"_id": payment_id})
        assert doc is not None
        if doc.get("outstanding_after_units") is None:
            units = to_units(amount, str(doc["currency"]))
            await self._payments.update_one(
                {"_id": payment_id}, {"$set": {"outstanding_after_units": units}}
            )
            return amount
        return amount_of(doc["outstanding_after_units"], str(doc["currency"]))

    async def payment_published(self, payment_id: str) -> None:
        """Remember that PaymentRecorded was acknowledged."""
        await self._payments.update_one(
            {"_id": payment_id}, {"$set": {"published_at": datetime.now(UTC)}}
        )

    async def add_credit_note(self, note: CreditNoteRecord) -> tuple[CreditNoteRecord, bool]:
        """Record the credit note once under its id."""
        stored, new = await _insert_once(self._credit_notes, credit_note_document(note))
        await self._list("credit_note", str(stored["invoice_id"]), str(stored["_id"]))
        return credit_note_of(stored), new

    async def credit_notes_of(self, invoice_id: str) -> list[CreditNoteRecord]:
        """The invoice's credit notes, by number (its slots, then each by ``_id``)."""
        docs = await self._records("credit_note", self._credit_notes, invoice_id)
        return [credit_note_of(d) for d in sorted(docs, key=lambda d: str(d["number"]))]

    async def credit_note_published(self, credit_note_id: str) -> None:
        """Remember that CreditNoteIssued was acknowledged."""
        await self._credit_notes.update_one(
            {"_id": credit_note_id}, {"$set": {"published_at": datetime.now(UTC)}}
        )

    async def add_credit(self, entry: CreditEntry) -> bool:
        """Record a ledger entry once under its id, and in its customer's summary (module
        docstring; a retry completes a summary a crash left without it)."""
        stored, new = await _insert_once(self._credits, credit_document(entry))
        await self._balances.update_one(
            {"_id": entry.customer_id},
            {
                "$addToSet": {
                    "entries": {
                        "id": stored["_id"],
                        "currency": stored["currency"],
                        "units": int(stored["amount_units"]),
                    }
                }
            },
            upsert=True,
        )
        return new

    async def balances_of(self, customer_id: str) -> dict[str, Decimal]:
        """The customer's balance per currency, from its summary (one look-up by ``_id``)."""
        doc = await self._balances.find_one({"_id": customer_id})
        units: dict[str, int] = {}
        seen: set[str] = set()
        for e in [] if doc is None else doc.get("entries", []):
            if e["id"] in seen:  # never twice, whatever happened to the summary
                continue
            seen.add(e["id"])
            units[e["currency"]] = units.get(e["currency"], 0) + int(e["units"])
        return {c: amount_of(u, c) for c, u in units.items()}

    async def credits_of(self, customer_id: str) -> list[CreditEntry]:
        """The customer's ledger, oldest first."""
        cursor = self._credits.find({"customer_id": customer_id}).sort(
            [("recorded_at", ASCENDING), ("_id", ASCENDING)]
        )
        return [credit_of(d) async for d in cursor]
