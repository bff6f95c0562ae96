"""Invoicing's ports: what its use cases need from storage, each with a MongoDB adapter and an
in-memory fake (``adapters/memory.py``) proven by the same contract tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from billing_invoicing.domain.credit import CreditEntry
from billing_invoicing.domain.model import (
    DraftLedger,
    DraftSums,
    Invoice,
    StoredCharge,
    StreamPosition,
)
from billing_invoicing.domain.settlement import CreditNoteRecord, PaymentRecord
from billing_schemas.events import RatedCharge


class ConcurrentUpdateError(RuntimeError):
    """The invoice changed in storage since it was loaded (its version moved on)."""


@dataclass(frozen=True)
class ChargeToStore:
    """A rated charge, the invoice it goes on, and where it was read from."""

    charge: RatedCharge
    invoice_id: str
    late: bool
    position: StreamPosition | None


class InvoiceRepository(Protocol):
    """Invoices (the aggregate), the charges behind them and the numbers they were given."""

    async def get(self, invoice_id: str) -> Invoice | None:
        """The invoice, or None if it has no document yet."""
        ...

    async def get_many(self, invoice_ids: Iterable[str]) -> dict[str, Invoice]:
        """Those of the invoices that exist, by id."""
        ...

    async def save(self, invoice: Invoice) -> None:
        """Write the invoice (its version moves on by one); a first write of an invoice that
        exists already raises :class:`ConcurrentUpdateError`. One writer decides an invoice:
        the consumer of its customer's partition (see the MongoDB adapter)."""
        ...

    async def forget(self, invoice_ids: Iterable[str]) -> None:
        """Drop any copy kept of these invoices, so the next load reads storage."""
        ...

    async def create_drafts(self, invoice_ids: Iterable[str]) -> None:
        """Give these invoices a draft document if they have none."""
        ...

    async def get_ledgers(self, ledgers: Iterable[int]) -> dict[int, DraftLedger]:
        """The ledgers of open drafts (an empty one where none is stored yet)."""
        ...

    async def save_ledger(self, ledger: DraftLedger) -> None:
        """Write the ledger if its stored version is the loaded one (then its version moves
        on); else raise :class:`ConcurrentUpdateError`."""
        ...

    async def forget_ledgers(self, ledgers: Iterable[int]) -> None:
        """Drop any copy kept of these ledgers."""
        ...

    async def draft_sums(self, invoice_id: str) -> DraftSums | None:
        """A draft's running sums as its ledger holds them."""
        ...

    async def store_charges(self, charges: Sequence[ChargeToStore]) -> list[StoredCharge]:
        """Store each charge once under its id; say, for each, where it is stored (its invoice
        and first stream position) and whether this call stored it."""
        ...

    async def has_charge(self, charge_id: str) -> bool:
        """Whether a charge with that id is stored."""
        ...

    async def claim_number(self, *, entity: str, year: int, invoice_id: str) -> int:
        """The invoice's sequence number in its entity's series for the year (gapless; a retry
        gets the same number)."""
        ...

    async def mark_published(self, invoice_id: str) -> None:
        """Remember that InvoiceFinalized was acknowledged by the broker."""
        ...

    async def is_published(self, invoice_id: str) -> bool:
        """Whether InvoiceFinalized was acknowledged for the invoice."""
        ...

    async def customers_with_invoices(self, period: str) -> list[str]:
        """Customers that have an invoice (draft or not) for the period."""
        ...

    async def issued(self, number: str) -> Invoice | None:
        """An issued invoice by its number (or its id ``customer:period``), read fresh from
        storage (settlement decides on what is stored, never on a kept copy)."""
        ...

    async def open_due_before(self, day: date) -> list[Invoice]:
        """Issued invoices that may still owe money (finalized, partially paid, overdue) due
        before ``day``, read fresh, by id."""
        ...

    async def save_settlement(self, invoice: Invoice) -> None:
        """Write an issued invoice's settlement (payments, credit notes, void, overdue, status)
        if its stored version is still the loaded one (then its version moves on); else raise
        :class:`ConcurrentUpdateError`. Settlement has several writers (the CLI, the API, the
        overdue job), unlike a draft."""
        ...


class CreditLedger(Protocol):
    """The customers' credit ledger (``domain/credit.py``): entries recorded once under their id."""

    async def add_credit(self, entry: CreditEntry) -> bool:
        """Record a credit ledger entry unless its id is recorded; whether this call did."""
        ...

    async def credits_of(self, customer_id: str) -> list[CreditEntry]:
        """The customer's credit ledger, oldest first."""
        ...

    async def balances_of(self, customer_id: str) -> dict[str, Decimal]:
        """The customer's balance per currency (what :meth:`credits_of` adds up to), in one
        look-up by id: the close reads it for every invoice."""
        ...


class SettlementRecords(CreditLedger, Protocol):
    """Payments, credit notes and the customers' credit ledger, each recorded once under its id."""

    async def add_payment(self, payment: PaymentRecord) -> tuple[PaymentRecord, bool]:
        """Record the payment unless one with its id is recorded: the stored one, and whether
        this call recorded it."""
        ...

    async def payments_of(self, invoice_id: str) -> list[PaymentRecord]:
        """The invoice's payments, oldest first."""
        ...

    async def fix_outstanding_after(self, payment_id: str, amount: Decimal) -> Decimal:
        """The payment's ``outstanding_after``: set to ``amount`` unless set already."""
        ...

    async def payment_published(self, payment_id: str) -> None:
        """Remember that the payment's event was acknowledged by the broker."""
        ...

    async def add_credit_note(self, note: CreditNoteRecord) -> tuple[CreditNoteRecord, bool]:
        """Record the credit note unless one with its id is recorded (as :meth:`add_payment`)."""
        ...

    async def credit_notes_of(self, invoice_id: str) -> list[CreditNoteRecord]:
        """The invoice's credit notes, by number."""
        ...

    async def credit_note_published(self, credit_note_id: str) -> None:
        """Remember that the credit note's event was acknowledged by the broker."""
        ...
