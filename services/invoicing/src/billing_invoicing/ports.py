"""Invoicing's ports: what its use cases need from storage, each with a MongoDB adapter and an
in-memory fake (``adapters/memory.py``) proven by the same contract tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from billing_catalog.models import Contact, Customer, InvoicingEntity
from billing_invoicing.domain.credit import CreditEntry
from billing_invoicing.domain.einvoice import CreditNoteDocument
from billing_invoicing.domain.invoice import InvoiceDocument
from billing_invoicing.domain.model import (
    DraftLedger,
    DraftSums,
    Invoice,
    StoredCharge,
    StreamPosition,
)
from billing_invoicing.domain.settlement import CreditNoteRecord, PaymentRecord
from billing_invoicing.domain.stored import CreditNoteRow, InvoiceRow
from billing_schemas.events import (
    ChargeRated,
    CreditNoteIssued,
    InvoiceFinalized,
    InvoiceOverdue,
    InvoicePaid,
    InvoiceVoided,
    PaymentRecorded,
    PeriodClosing,
    RatedCharge,
)


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


class ContactBook(Protocol):
    """Port: the contacts of the catalog's customers."""

    async def contacts(self, customer_id: str) -> list[Contact] | None:
        """The customer's contacts, or None if there is no such customer."""
        ...

    async def replace(self, customer_id: str, before: list[Contact], after: list[Contact]) -> bool:
        """Store ``after`` if the contacts are still ``before``; whether it was stored."""
        ...


class CreditNoteRendering(Protocol):
    """Port: a credit note's PDF as its customer receives it."""

    async def render_credit_note(self, invoice: InvoiceDocument, note: CreditNoteDocument) -> bytes:
        """The credit note on ``invoice``: Factur-X for customers who receive it, else plain."""
        ...


class CustomerAccountBook(Protocol):
    """Port: the catalog's customer records, read whole, and their language changed."""

    async def customer(self, customer_id: str) -> Customer | None:
        """The customer, or None."""
        ...

    async def set_language(self, customer_id: str, language: str) -> bool:
        """Store the customer's invoice and email language; whether the customer exists."""
        ...

    async def credit_notes(self, customer_id: str) -> list[IssuedCreditNote]:
        """The credit notes issued to the customer, newest first."""
        ...


@dataclass(frozen=True)
class IssuedCreditNote:
    """A credit note as the customer's list shows it (amount positive, tax included)."""

    credit_note_id: str
    number: str
    invoice_number: str
    currency: str
    amount: Decimal
    issue_date: str
    reason: str


class CatalogReading(Protocol):
    """Port: the catalog's customers and invoicing entities."""

    async def customer(self, customer_id: str) -> Customer | None:
        """The customer (None if unknown)."""
        ...

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        """The invoicing entity (None if unknown)."""
        ...


class IssuedDocuments(Protocol):
    """Port: stored invoices and credit notes by number."""

    async def invoice_by_number(self, number: str) -> InvoiceRow | None:
        """The stored invoice (None if no invoice has that number)."""
        ...

    async def credit_note_by_number(self, number: str) -> CreditNoteRow | None:
        """The stored credit note (None if no credit note has that number)."""
        ...


class FacturxRendering(Protocol):
    """Port: the invoice PDF, as PDF/A-3b, carrying its CII XML."""

    async def render_facturx(self, invoice: InvoiceDocument, xml: bytes) -> bytes:
        """The Factur-X PDF."""
        ...

    async def render_credit_note_facturx(
        self, invoice: InvoiceDocument, note: CreditNoteDocument, xml: bytes
    ) -> bytes:
        """A credit note's Factur-X PDF."""
        ...


class PdfRendering(Protocol):
    """Port: turn an invoice into PDF bytes (off the event loop)."""

    async def render(self, invoice: InvoiceDocument) -> bytes:
        """Render the invoice."""
        ...


class StoredDocument(Protocol):
    """What the document store returns."""

    @property
    def file_id(self) -> str: ...
    @property
    def sha256(self) -> str: ...


class PdfStorage(Protocol):
    """Port: keep an invoice's PDF once."""

    async def save(self, *, invoice_id: str, number: str, pdf: bytes) -> StoredDocument:
        """Store (or find the already stored) PDF of an invoice."""
        ...


class EventPublishing(Protocol):
    """Port: publish invoicing's events and wait for the broker's ack."""

    async def invoice_finalized(self, event: InvoiceFinalized) -> None:
        """Publish the event keyed by customer."""
        ...

    async def period_closing(self, markers: list[PeriodClosing]) -> None:
        """Put close markers into the charge stream, keyed by customer."""
        ...

    async def charge_added(self, event: ChargeRated) -> None:
        """Put a one-off charge into the charge stream, keyed by customer."""
        ...


class PdfReading(Protocol):
    """Port: a stored invoice PDF's bytes by its file id."""

    async def load(self, file_id: str) -> bytes:
        """The PDF (LookupError if there is none)."""
        ...


class CustomerCatalog(Protocol):
    """Port: the catalog's customers."""

    async def customer(self, customer_id: str) -> Customer | None:
        """One customer, or None."""
        ...


class ChargeStream(Protocol):
    """Port: put a charge into the charge stream, keyed by customer."""

    async def charge_added(self, event: ChargeRated) -> None:
        """Publish and wait for the broker's ack."""
        ...


class SettlementEvents(Protocol):
    """Port: publish what happened to a finalized invoice, keyed by customer."""

    async def payment_recorded(self, event: PaymentRecorded) -> None:
        """A payment was recorded."""
        ...

    async def credit_note_issued(self, event: CreditNoteIssued) -> None:
        """A credit note was issued."""
        ...

    async def invoice_overdue(self, events: list[InvoiceOverdue]) -> None:
        """Invoices are overdue."""
        ...

    async def invoice_paid(self, event: InvoicePaid) -> None:
        """An invoice became paid."""
        ...

    async def invoice_voided(self, event: InvoiceVoided) -> None:
        """An invoice was voided."""
        ...


class EntityCatalog(Protocol):
    """Port: the invoicing entities (a credit note's number has its entity's prefix)."""

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        """One invoicing entity, or None."""
        ...


class InvoicePdfRendering(Protocol):
    """What this adapter wraps (``adapters.pdf.PdfRenderer``)."""

    async def render(self, invoice: InvoiceDocument) -> bytes:
        """The plain PDF."""
        ...

    async def render_facturx(self, invoice: InvoiceDocument, xml: bytes) -> bytes:
        """The Factur-X PDF carrying ``xml``."""
        ...

    async def render_credit_note(self, invoice: InvoiceDocument, note: CreditNoteDocument) -> bytes:
        """A credit note's plain PDF."""
        ...

    async def render_credit_note_facturx(
        self, invoice: InvoiceDocument, note: CreditNoteDocument, xml: bytes
    ) -> bytes:
        """A credit note's Factur-X PDF carrying ``xml``."""
        ...
