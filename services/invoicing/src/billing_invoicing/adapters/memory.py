"""In-memory fakes of invoicing's ports, for fast tests of the use cases. The contract tests in
``tests/test_invoicing_repository_contract.py`` hold them to what the MongoDB adapters do."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from billing_catalog.models import Contact, Customer
from billing_invoicing.adapters.documents import StoredPdf, _not_found, pdf_file_id
from billing_invoicing.adapters.invoice_repo import charge_amounts
from billing_invoicing.domain.credit import CreditEntry, balances
from billing_invoicing.domain.einvoice import CreditNoteDocument
from billing_invoicing.domain.invoice import InvoiceDocument
from billing_invoicing.domain.model import (
    DraftLedger,
    DraftSums,
    Invoice,
    StoredCharge,
    ledger_of,
    parse_invoice_id,
)
from billing_invoicing.domain.settlement import OPEN_STATUSES, CreditNoteRecord, PaymentRecord
from billing_invoicing.ports import ChargeToStore, ConcurrentUpdateError, IssuedCreditNote
from billing_schemas.events import (
    ChargeRated,
    CreditNoteIssued,
    InvoiceFinalized,
    InvoiceOverdue,
    InvoicePaid,
    InvoiceVoided,
    PaymentRecorded,
    PeriodClosing,
)


@dataclass(frozen=True)
class _Kept:
    stored: StoredCharge
    late: bool


class InMemoryInvoiceRepository:
    """:class:`~billing_invoicing.ports.InvoiceRepository` in dictionaries.

    ``fail_after_storing_charges`` makes the next :meth:`store_charges` store and then raise, as
    a crash between two writes would (tests of recovery).
    """

    def __init__(self) -> None:
        self.invoices: dict[str, Invoice] = {}
        self.ledgers: dict[int, DraftLedger] = {}
        self.charges: dict[str, _Kept] = {}
        self.numbers: dict[tuple[str, int], list[str]] = {}
        self.published: set[str] = set()
        self.fail_after_storing_charges = False

    async def get(self, invoice_id: str) -> Invoice | None:
        """A copy of the stored invoice."""
        found = self.invoices.get(invoice_id)
        return None if found is None else copy.deepcopy(found)

    async def get_many(self, invoice_ids: Iterable[str]) -> dict[str, Invoice]:
        """Copies of those that exist."""
        return {i: copy.deepcopy(self.invoices[i]) for i in set(invoice_ids) if i in self.invoices}

    async def save(self, invoice: Invoice) -> None:
        """Store a copy (a first write of an existing invoice is refused)."""
        stored = self.invoices.get(invoice.invoice_id)
        if invoice.version == 0 and stored is not None:
            raise ConcurrentUpdateError(invoice.invoice_id)
        if invoice.version > 0 and stored is None:
            raise ConcurrentUpdateError(invoice.invoice_id)
        invoice.version += 1
        self.invoices[invoice.invoice_id] = copy.deepcopy(invoice)

    async def forget(self, invoice_ids: Iterable[str]) -> None:
        """Nothing is kept outside the dictionaries."""
        del invoice_ids

    async def create_drafts(self, invoice_ids: Iterable[str]) -> None:
        """A draft for each invoice that has none."""
        for invoice_id in invoice_ids:
            if invoice_id not in self.invoices:
                await self.save(Invoice.new(invoice_id))

    async def get_ledgers(self, ledgers: Iterable[int]) -> dict[int, DraftLedger]:
        """Copies of the ledgers (empty ones where none is stored)."""
        return {
            n: copy.deepcopy(self.ledgers.get(n) or DraftLedger(ledger=n)) for n in set(ledgers)
        }

    async def save_ledger(self, ledger: DraftLedger) -> None:
        """Store a copy if the stored version is the loaded one."""
        stored = self.ledgers.get(ledger.ledger)
        if (0 if stored is None else stored.version) != ledger.version:
            raise ConcurrentUpdateError(f"ledger {ledger.ledger}")
        ledger.version += 1
        self.ledgers[ledger.ledger] = copy.deepcopy(ledger)

    async def forget_ledgers(self, ledgers: Iterable[int]) -> None:
        """Nothing is kept outside the dictionaries."""
        del ledgers

    async def draft_sums(self, invoice_id: str) -> DraftSums | None:
        """A draft's sums in its ledger."""
        ledger = self.ledgers.get(ledger_of(parse_invoice_id(invoice_id)[0]))
        return None if ledger is None else copy.deepcopy(ledger.drafts.get(invoice_id))

    async def store_charges(self, charges: Sequence[ChargeToStore]) -> list[StoredCharge]:
        """Store each charge once under its id."""
        result = []
        for item in charges:
            charge_id = item.charge.charge_id
            kept = self.charges.get(charge_id)
            if kept is None:
                stored = StoredCharge(
                    charge_amounts(item.charge), item.invoice_id, item.position, new=True
                )
                self.charges[charge_id] = _Kept(stored, item.late)
                result.append(stored)
            else:
                old = kept.stored
                result.append(StoredCharge(old.amounts, old.invoice_id, old.position, new=False))
        if self.fail_after_storing_charges:
            self.fail_after_storing_charges = False
            msg = "crashed after storing the charges"
            raise RuntimeError(msg)
        return result

    async def has_charge(self, charge_id: str) -> bool:
        """Whether it is stored."""
        return charge_id in self.charges

    async def claim_number(self, *, entity: str, year: int, invoice_id: str) -> int:
        """Gapless per entity and year; a retry gets its own number."""
        series = self.numbers.setdefault((entity, year), [])
        if invoice_id not in series:
            series.append(invoice_id)
        return series.index(invoice_id) + 1

    async def mark_published(self, invoice_id: str) -> None:
        """Remember the announcement."""
        self.published.add(invoice_id)

    async def is_published(self, invoice_id: str) -> bool:
        """Whether it was announced."""
        return invoice_id in self.published

    async def customers_with_invoices(self, period: str) -> list[str]:
        """Customers with an invoice for the period."""
        return sorted({i.customer_id for i in self.invoices.values() if i.period == period})

    async def issued(self, number: str) -> Invoice | None:
        """A copy of the issued invoice with that number (or id)."""
        for invoice in self.invoices.values():
            if invoice.document is not None and number in (invoice.number, invoice.invoice_id):
                return copy.deepcopy(invoice)
        return None

    async def open_due_before(self, day: date) -> list[Invoice]:
        """Copies of the issued invoices that may owe money, due before ``day``, by id."""
        return [
            copy.deepcopy(i)
            for _, i in sorted(self.invoices.items())
            if i.document is not None
            and i.status in OPEN_STATUSES
            and i.document.due_date is not None
            and i.document.due_date < day
        ]

    async def save_settlement(self, invoice: Invoice) -> None:
        """Store a copy if the stored version is the loaded one."""
        stored = self.invoices.get(invoice.invoice_id)
        if stored is None or stored.version != invoice.version:
            raise ConcurrentUpdateError(invoice.invoice_id)
        invoice.version += 1
        self.invoices[invoice.invoice_id] = copy.deepcopy(invoice)


class InMemorySettlementRecords:
    """:class:`~billing_invoicing.ports.SettlementRecords` in dictionaries."""

    def __init__(self) -> None:
        self.payments: dict[str, PaymentRecord] = {}
        self.credit_notes: dict[str, CreditNoteRecord] = {}
        self.credits: dict[str, CreditEntry] = {}

    async def add_payment(self, payment: PaymentRecord) -> tuple[PaymentRecord, bool]:
        """Record it unless its id is known."""
        if payment.payment_id in self.payments:
            return self.payments[payment.payment_id], False
        self.payments[payment.payment_id] = payment
        return payment, True

    async def payments_of(self, invoice_id: str) -> list[PaymentRecord]:
        """In the order recorded."""
        return [p for p in self.payments.values() if p.invoice_id == invoice_id]

    async def fix_outstanding_after(self, payment_id: str, amount: Decimal) -> Decimal:
        """Set once."""
        payment = self.payments[payment_id]
        if payment.outstanding_after is None:
            self.payments[payment_id] = replace(payment, outstanding_after=amount)
            return amount
        return payment.outstanding_after

    async def payment_published(self, payment_id: str) -> None:
        """Mark it."""
        self.payments[payment_id] = replace(self.payments[payment_id], published=True)

    async def add_credit_note(self, note: CreditNoteRecord) -> tuple[CreditNoteRecord, bool]:
        """Record it unless its id is known."""
        if note.credit_note_id in self.credit_notes:
            return self.credit_notes[note.credit_note_id], False
        self.credit_notes[note.credit_note_id] = note
        return note, True

    async def credit_notes_of(self, invoice_id: str) -> list[CreditNoteRecord]:
        """By number."""
        found = [n for n in self.credit_notes.values() if n.invoice_id == invoice_id]
        return sorted(found, key=lambda n: n.number)

    async def credit_note_published(self, credit_note_id: str) -> None:
        """Mark it."""
        note = self.credit_notes[credit_note_id]
        self.credit_notes[credit_note_id] = replace(note, published=True)

    async def add_credit(self, entry: CreditEntry) -> bool:
        """Record it unless its id is known."""
        if entry.entry_id in self.credits:
            return False
        self.credits[entry.entry_id] = entry
        return True

    async def credits_of(self, customer_id: str) -> list[CreditEntry]:
        """In the order recorded."""
        return [e for e in self.credits.values() if e.customer_id == customer_id]

    async def balances_of(self, customer_id: str) -> dict[str, Decimal]:
        """The sum of the customer's entries per currency."""
        return balances(await self.credits_of(customer_id))


class InMemoryCustomerAccountBook:
    """Fake of :class:`CustomerAccountBook` for unit tests."""

    def __init__(self, customers: dict[str, Customer] | None = None) -> None:
        self.customers = dict(customers or {})
        self.notes: dict[str, list[IssuedCreditNote]] = {}

    async def credit_notes(self, customer_id: str) -> list[IssuedCreditNote]:
        """See :class:`CustomerAccountBook`."""
        notes = self.notes.get(customer_id, [])
        return sorted(notes, key=lambda n: (n.issue_date, n.number), reverse=True)

    async def customer(self, customer_id: str) -> Customer | None:
        """See :class:`CustomerAccountBook`."""
        return self.customers.get(customer_id)

    async def set_language(self, customer_id: str, language: str) -> bool:
        """See :class:`CustomerAccountBook`."""
        found = self.customers.get(customer_id)
        if found is None:
            return False
        self.customers[customer_id] = found.model_copy(update={"language": language})
        return True


class InMemoryContactBook:
    """Fake of :class:`ContactBook` for unit tests."""

    def __init__(self, contacts: dict[str, list[Contact]] | None = None) -> None:
        self.by_customer = dict(contacts or {})

    async def contacts(self, customer_id: str) -> list[Contact] | None:
        """See :class:`ContactBook`."""
        found = self.by_customer.get(customer_id)
        return None if found is None else list(found)

    async def replace(self, customer_id: str, before: list[Contact], after: list[Contact]) -> bool:
        """See :class:`ContactBook`."""
        if self.by_customer.get(customer_id) != before:
            return False
        self.by_customer[customer_id] = list(after)
        return True


class InMemoryInvoicePdfStore:
    """The same behaviour as :class:`InvoicePdfStore`, in a dict, for unit tests."""

    def __init__(self) -> None:
        self._by_invoice: dict[str, StoredPdf] = {}
        self._data: dict[str, bytes] = {}

    async def save(self, *, invoice_id: str, number: str, pdf: bytes) -> StoredPdf:
        """Store the invoice's PDF; if it is already stored, return that (first one wins)."""
        del number  # only part of the stored file's metadata
        existing = self._by_invoice.get(invoice_id)
        if existing is not None:
            return existing
        stored = StoredPdf(
            file_id=pdf_file_id(invoice_id), sha256=hashlib.sha256(pdf).hexdigest(), size=len(pdf)
        )
        self._by_invoice[invoice_id] = stored
        self._data[stored.file_id] = pdf
        return stored

    async def load(self, file_id: str) -> bytes:
        """The stored PDF's bytes; :class:`InvoicePdfNotFoundError` for an unknown id."""
        try:
            return self._data[file_id]
        except KeyError:
            raise _not_found(file_id) from None

    async def find(self, invoice_id: str) -> StoredPdf | None:
        """The invoice's stored PDF, or None if none is stored."""
        return self._by_invoice.get(invoice_id)


class InMemoryInvoiceEvents:
    """Fake of the same ports for tests: keeps what would be published, per kind."""

    def __init__(self) -> None:
        self.finalized: list[InvoiceFinalized] = []
        self.markers: list[PeriodClosing] = []
        self.charges: list[ChargeRated] = []
        self.payments: list[PaymentRecorded] = []
        self.credit_notes: list[CreditNoteIssued] = []
        self.overdue: list[InvoiceOverdue] = []
        self.paid: list[InvoicePaid] = []
        self.voided: list[InvoiceVoided] = []
        self.charge_stream: list[ChargeRated | PeriodClosing] = []
        """Markers and one-off charges in the order published: they share one stream."""

    async def invoice_finalized(self, event: InvoiceFinalized) -> None:
        self.finalized.append(event)

    async def period_closing(self, markers: list[PeriodClosing]) -> None:
        self.markers += markers
        self.charge_stream += markers

    async def charge_added(self, event: ChargeRated) -> None:
        self.charges.append(event)
        self.charge_stream.append(event)

    async def payment_recorded(self, event: PaymentRecorded) -> None:
        self.payments.append(event)

    async def credit_note_issued(self, event: CreditNoteIssued) -> None:
        self.credit_notes.append(event)

    async def invoice_overdue(self, events: list[InvoiceOverdue]) -> None:
        self.overdue += events

    async def invoice_paid(self, event: InvoicePaid) -> None:
        self.paid.append(event)

    async def invoice_voided(self, event: InvoiceVoided) -> None:
        self.voided.append(event)


class InMemoryPdfRenderer:
    """Fake of the renderer ports (``PdfRendering``, ``FacturxRendering``,
    ``CreditNoteRendering``, ``InvoicePdfRendering``) for tests: a one-page PDF naming the
    document, made at once without WeasyPrint; a Factur-X one carries the XML as
    ``factur-x.xml`` after the XSD check the real renderer makes (``tests/
    test_invoicing_renderer_contract.py`` holds it to ``adapters.pdf.PdfRenderer``)."""

    def __init__(self) -> None:
        self.rendered: list[str] = []
        """The numbers of the documents rendered, in order."""

    async def render(self, invoice: InvoiceDocument) -> bytes:
        self.rendered.append(invoice.number or invoice.invoice_id)
        return _text_pdf([f"Invoice {invoice.number}", invoice.seller.name, invoice.buyer.name])

    async def render_facturx(self, invoice: InvoiceDocument, xml: bytes) -> bytes:
        return _with_facturx_xml(await self.render(invoice), xml)

    async def render_credit_note(self, invoice: InvoiceDocument, note: CreditNoteDocument) -> bytes:
        self.rendered.append(note.number)
        return _text_pdf(
            [f"Credit note {note.number}", f"Invoice {invoice.number}", invoice.buyer.name]
        )

    async def render_credit_note_facturx(
        self, invoice: InvoiceDocument, note: CreditNoteDocument, xml: bytes
    ) -> bytes:
        return _with_facturx_xml(await self.render_credit_note(invoice, note), xml)


def _text_pdf(lines: list[str]) -> bytes:
    """A one-page PDF showing ``lines`` in Helvetica (text a PDF reader can extract)."""
    shown = "".join(
        "({}) Tj T* ".format(line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)"))
        for line in lines
    )
    content = f"BT /F1 11 Tf 14 TL 56 780 Td {shown}ET".encode("cp1252", errors="replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    pdf = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(pdf)


def _with_facturx_xml(pdf: bytes, xml: bytes) -> bytes:
    """``pdf`` carrying ``xml`` as ``factur-x.xml``, if the XML is valid Factur-X EN 16931 CII
    (else the factur-x package's error, as the real renderer raises)."""
    import io

    from facturx import xml_check_xsd  # type: ignore[import-untyped]
    from pypdf import PdfWriter

    xml_check_xsd(xml, flavor="factur-x", level="en16931")
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    writer.add_attachment("factur-x.xml", xml)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
