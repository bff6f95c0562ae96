"""Use cases after finalization: payments, credit notes (and voiding), overdue invoices.

Each loads the issued ``Invoice`` (``domain/model.py``), lets it decide, saves it (a write
guarded by its version: settlement has several writers) and then publishes. Each is
idempotent: a payment is identified by its invoice, method and reference, a credit note by its
invoice and what it credits, an overdue notice by its invoice and day; the aggregate counts a
payment or note once. Every event is published after the database holds the fact and marked
once acknowledged, so a crash between the two is repaired by running the command again (the
event id is the same; notify sends one email per id). Money paid beyond what an invoice owes
becomes the customer's credit (``domain/credit.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TypeVar

from billing_catalog.models import PaymentMethod
from billing_invoicing.domain.credit import granted_by, overpayment_entry
from billing_invoicing.domain.invoice import InvoiceDocument, InvoiceStatus
from billing_invoicing.domain.model import BecameOverdue, Invoice
from billing_invoicing.domain.settlement import (
    CreditNoteRecord,
    PaymentRecord,
    SettlementError,
    check_amount,
    credit_note_id_for,
    credit_note_tax,
    payment_id_for,
)
from billing_invoicing.ports import (
    ConcurrentUpdateError,
    EntityCatalog,
    InvoiceRepository,
    SettlementEvents,
    SettlementRecords,
    StoredDocument,
)
from billing_invoicing.service.credit_note_documents import (
    CreditNotePdfPorts,
    credit_note_of,
    store_credit_note_pdf,
)
from billing_schemas.events import (
    CreditNote,
    CreditNoteIssued,
    InvoiceOverdue,
    InvoicePaid,
    InvoiceVoided,
    OverdueInvoice,
    PaidInvoice,
    Payment,
    PaymentRecorded,
    VoidedInvoice,
)

SOURCE = "billing-invoicing"
SAVE_ATTEMPTS = 10
T = TypeVar("T")


@dataclass
class SettlementPorts:
    """What the settlement use cases need."""

    catalog: EntityCatalog
    invoices: InvoiceRepository
    settlements: SettlementRecords
    events: SettlementEvents
    credit_note_pdfs: CreditNotePdfPorts | None = None
    """Renders and stores each credit note's PDF at issue (None: credit notes get no PDF)."""


@dataclass(frozen=True)
class Dues:
    """The rundown shown when paying: what the invoice says, what happened since, what to pay."""

    invoice_id: str
    number: str
    customer_id: str
    customer_name: str
    currency: str
    status: str
    issue_date: str
    due_date: str
    subtotal: Decimal
    taxes: list[tuple[str, Decimal]]
    total: Decimal
    paid: Decimal
    credited: Decimal
    outstanding: Decimal
    payment_methods: list[PaymentMethod]
    payments: list[PaymentRecord]
    credit_notes: list[CreditNoteRecord]
    customer_credit: Decimal
    credit_applied: Decimal = Decimal(0)
    """The customer's credit taken off the invoice at its finalization."""


@dataclass(frozen=True)
class PaymentOutcome:
    """What recording a payment did."""

    payment: Payment
    status: InvoiceStatus
    customer_credit_added: Decimal
    already_recorded: bool


@dataclass(frozen=True)
class CreditNoteOutcome:
    """What issuing a credit note did."""

    credit_note: CreditNote
    status: InvoiceStatus
    customer_credit_added: Decimal
    already_issued: bool


class InvoiceNotFoundError(LookupError):
    """No finalized invoice has that number."""


async def _issued(ports: SettlementPorts, number: str) -> tuple[Invoice, InvoiceDocument]:
    """The issued and announced invoice with that number, read fresh."""
    invoice = await ports.invoices.issued(number)
    if invoice is None or invoice.document is None or invoice.number is None:
        msg = f"no finalized invoice numbered {number!r}"
        raise InvoiceNotFoundError(msg)
    if not await ports.invoices.is_published(invoice.invoice_id):
        msg = f"invoice {number} is still being finalized; try again in a moment"
        raise SettlementError(msg)
    return invoice, invoice.document


async def _settle(
    ports: SettlementPorts, number: str, decide: Callable[[Invoice], T]
) -> tuple[Invoice, T]:
    """Load the issued invoice, let ``decide`` change it, save it (unless nothing changed);
    again from a fresh read if another writer saved it in between (the decision is then made
    again on what that writer left)."""
    for _ in range(SAVE_ATTEMPTS):
        invoice, _ = await _issued(ports, number)
        before = invoice.settlement_state()
        decided = decide(invoice)
        if invoice.settlement_state() == before:
            return invoice, decided
        try:
            await ports.invoices.save_settlement(invoice)
        except ConcurrentUpdateError:
            continue
        return invoice, decided
    msg = f"invoice {number}: its settlement keeps changing; try again"
    raise SettlementError(msg)


async def dues(ports: SettlementPorts, number: str) -> Dues:
    """The dues breakdown of an invoice, with the ways to pay it."""
    invoice, document = await _issued(ports, number)
    standing = invoice.standing()
    currency = document.currency
    balance = await ports.settlements.balances_of(invoice.customer_id)
    return Dues(
        invoice_id=invoice.invoice_id,
        number=str(invoice.number),
        customer_id=invoice.customer_id,
        customer_name=document.buyer.name,
        currency=currency,
        status=invoice.status.value,
        issue_date=str(document.issue_date),
        due_date=str(document.due_date),
        subtotal=document.subtotal,
        taxes=[(t.label, t.tax) for t in document.taxes],
        total=standing.total,
        paid=standing.paid,
        credited=standing.credited,
        outstanding=standing.outstanding,
        payment_methods=list(document.payment_methods),
        payments=await ports.settlements.payments_of(invoice.invoice_id),
        credit_notes=await ports.settlements.credit_notes_of(invoice.invoice_id),
        customer_credit=balance.get(currency, Decimal(0)),
        credit_applied=standing.credit_applied,
    )


def _method(methods: list[PaymentMethod], method: str) -> str:
    """The entity's spelling of the method; refuse one the entity does not offer."""
    if not methods:
        return method
    for offered in methods:
        if offered.kind.casefold() == method.casefold():
            return offered.kind
    kinds = ", ".join(repr(m.kind) for m in methods)
    msg = f"payment method {method!r} is not one the seller offers ({kinds})"
    raise SettlementError(msg)


async def record_payment(
    ports: SettlementPorts,
    *,
    number: str,
    amount: Decimal,
    method: str,
    reference: str,
    paid_on: date,
    correlation_id: str,
) -> PaymentOutcome:
    """Record a payment against a finalized invoice; publish ``PaymentRecorded``.

    The outstanding amount and status follow; a payment beyond what is owed is recorded as
    customer credit (explicitly, in the credit ledger). Recording the same payment (invoice,
    method, reference) again changes nothing; with another amount it is refused.
    """
    invoice, document = await _issued(ports, number)
    record = _payment_record(
        invoice, document, amount=amount, method=method, reference=reference, paid_on=paid_on
    )
    stored, new = await _add_payment_once(ports, record, number=number)
    payment_id = record.payment_id
    invoice, _ = await _settle(ports, number, lambda i: i.record_payment(stored))
    standing = invoice.standing()
    added = await _record_overpayment(ports, invoice, payment_id)
    # what was outstanding right after this payment, fixed the first time it is known, so that
    # a retry publishes the same figure
    outstanding_after = await ports.settlements.fix_outstanding_after(
        payment_id, standing.outstanding
    )
    payment = Payment(
        payment_id=payment_id,
        invoice_id=invoice.invoice_id,
        invoice_number=str(invoice.number),
        customer_id=invoice.customer_id,
        amount=stored.amount,
        currency=record.currency,
        method=record.method,
        reference=reference,
        paid_on=stored.paid_on,
        outstanding_after=outstanding_after,
    )
    if not stored.published:
        await _publish_payment(ports, payment, correlation_id)
    await _announce(ports, invoice, payment_id, correlation_id)
    return PaymentOutcome(payment, invoice.status, added, not new)


def _payment_record(
    invoice: Invoice,
    document: InvoiceDocument,
    *,
    amount: Decimal,
    method: str,
    reference: str,
    paid_on: date,
) -> PaymentRecord:
    """The payment to record, once checked: the invoice can be paid, the amount is one of its
    currency, a reference is given, the method is one the seller offers (its spelling)."""
    invoice.check_payable()
    currency = document.currency
    check_amount(amount, currency, "the amount paid")
    if not reference.strip():
        msg = "a payment needs a reference (the bank's or the card processor's)"
        raise SettlementError(msg)
    method = _method(list(document.payment_methods), method)
    return PaymentRecord(
        payment_id=payment_id_for(invoice.invoice_id, method, reference),
        invoice_id=invoice.invoice_id,
        invoice_number=str(invoice.number),
        customer_id=invoice.customer_id,
        amount=amount,
        currency=currency,
        method=method,
        reference=reference,
        paid_on=paid_on,
    )


async def _add_payment_once(
    ports: SettlementPorts, payment: PaymentRecord, *, number: str
) -> tuple[PaymentRecord, bool]:
    """Record the payment unless recorded already: the stored one and whether this call
    recorded it. The same payment again with another amount is refused."""
    stored, new = await ports.settlements.add_payment(payment)
    if stored.amount != payment.amount:
        msg = (
            f"payment {payment.reference!r} by {payment.method} on {number} is already "
            f"recorded with amount {stored.amount}, not {payment.amount}"
        )
        raise SettlementError(msg)
    return stored, new


async def _publish_payment(ports: SettlementPorts, payment: Payment, correlation_id: str) -> None:
    """Publish ``PaymentRecorded`` (its id the payment's, so a retry is the same event) and
    remember that the broker acknowledged it."""
    await ports.events.payment_recorded(
        PaymentRecorded.create(
            payment,
            source=SOURCE,
            correlation_id=correlation_id,
            event_id=f"payment-recorded:{payment.payment_id}",
        )
    )
    await ports.settlements.payment_published(payment.payment_id)


async def _record_overpayment(ports: SettlementPorts, invoice: Invoice, cause: str) -> Decimal:
    """Make the credit the invoice granted add up to its overpayment; return what was added."""
    entries = await ports.settlements.credits_of(invoice.customer_id)
    entry = overpayment_entry(
        customer_id=invoice.customer_id,
        invoice_id=invoice.invoice_id,
        invoice_number=invoice.number,
        currency=invoice.currency_issued,
        overpaid=invoice.standing().overpaid,
        granted=granted_by(entries, invoice.invoice_id),
        cause=cause,
        at=datetime.now(UTC),
    )
    if entry is None or not await ports.settlements.add_credit(entry):
        return Decimal(0)  # nothing to add, or this cause's credit is recorded already
    return entry.amount


async def issue_credit_note(
    ports: SettlementPorts,
    *,
    number: str,
    amount: Decimal | None,
    reason: str,
    issue_date: date,
    correlation_id: str,
) -> CreditNoteOutcome:
    """Issue a credit note against a finalized invoice (``amount`` None: void the invoice).

    A credit note is the only correction of a finalized invoice: it references the invoice, has
    its own gapless number (``<prefix>CN-<year>-<seq>`` in the invoicing entity's credit-note
    series) and reduces what is owed. Voiding credits everything not credited yet and marks the
    invoice void. Money already paid beyond what is then owed becomes customer credit.
    """
    invoice, document = await _issued(ports, number)
    if not reason.strip():
        msg = "a credit note needs a reason"
        raise SettlementError(msg)
    void = amount is None
    credit = invoice.standing().owed if amount is None else amount
    note_id = credit_note_id_for(invoice.invoice_id, amount=amount, reason=reason, day=issue_date)
    invoice.check_credit(note_id, credit, void=void)
    notes = await ports.settlements.credit_notes_of(invoice.invoice_id)
    note = await _credit_note(
        ports, invoice, note_id, credit, reason=reason, day=issue_date, void=void, notes=notes
    )
    stored, new = await ports.settlements.add_credit_note(note)
    invoice, _ = await _settle(
        ports, number, lambda i: i.void(stored) if stored.void else i.credit(stored)
    )
    added = await _record_overpayment(ports, invoice, note_id)
    pdf = await _store_credit_note_pdf(ports, invoice, document, stored)
    issued = CreditNote(
        credit_note_id=note_id,
        credit_note_number=stored.number,
        invoice_id=invoice.invoice_id,
        invoice_number=str(invoice.number),
        customer_id=invoice.customer_id,
        customer_name=document.buyer.name,
        issue_date=stored.issue_date,
        currency=stored.currency,
        total=stored.amount,
        reason=stored.reason,
        pdf_file_id=None if pdf is None else pdf.file_id,
        pdf_sha256=None if pdf is None else pdf.sha256,
    )
    if not stored.published:
        await _publish_credit_note(ports, issued, correlation_id)
    await _announce(ports, invoice, note_id, correlation_id, issued if stored.void else None)
    return CreditNoteOutcome(issued, invoice.status, added, not new)


async def _store_credit_note_pdf(
    ports: SettlementPorts, invoice: Invoice, document: InvoiceDocument, note: CreditNoteRecord
) -> StoredDocument | None:
    """The credit note's PDF, stored before the event that names it (None where the service
    renders no PDFs); it names the invoice by the number and date it was issued with."""
    if ports.credit_note_pdfs is None:
        return None
    issued_document = document
    if document.number is None or document.issue_date is None:
        issued_document = document.model_copy(
            update={"number": str(invoice.number), "issue_date": invoice.issue_date}
        )
    return await store_credit_note_pdf(
        ports.credit_note_pdfs, issued_document, credit_note_of(note), note.credit_note_id
    )


async def _publish_credit_note(
    ports: SettlementPorts, issued: CreditNote, correlation_id: str
) -> None:
    """Publish ``CreditNoteIssued`` (its id the credit note's) and remember that the broker
    acknowledged it."""
    await ports.events.credit_note_issued(
        CreditNoteIssued.create(
            issued,
            source=SOURCE,
            correlation_id=correlation_id,
            event_id=f"credit-note-issued:{issued.credit_note_id}",
        )
    )
    await ports.settlements.credit_note_published(issued.credit_note_id)


async def _credit_note(
    ports: SettlementPorts,
    invoice: Invoice,
    note_id: str,
    credit: Decimal,
    *,
    reason: str,
    day: date,
    void: bool,
    notes: list[CreditNoteRecord],
) -> CreditNoteRecord:
    """The credit note to record: numbered in its entity's credit-note series (a retry gets
    its own number back), its tax the invoice's proportion (``credit_note_tax``)."""
    document = invoice.document
    assert document is not None
    issue_date = day
    entity = document.invoicing_entity_id
    seq = await ports.invoices.claim_number(
        entity=f"{entity}:credit-notes", year=issue_date.year, invoice_id=note_id
    )
    found = await ports.catalog.invoicing_entity(entity)
    prefix = "" if found is None else found.number_prefix
    earlier = [n for n in notes if n.credit_note_id != note_id]
    tax = credit_note_tax(
        credit,
        credited_before=sum((n.amount for n in earlier), Decimal(0)),
        tax_credited_before=sum((n.tax for n in earlier), Decimal(0)),
        total=document.total,
        tax=document.tax,
        currency=document.currency,
    )
    return CreditNoteRecord(
        credit_note_id=note_id,
        number=f"{prefix}CN-{issue_date.year}-{seq:06d}",
        invoice_id=invoice.invoice_id,
        invoice_number=str(invoice.number),
        customer_id=invoice.customer_id,
        currency=document.currency,
        amount=credit,
        tax=tax,
        net=credit - tax,
        reason=reason,
        void=void,
        issue_date=issue_date,
    )


async def _announce(
    ports: SettlementPorts,
    invoice: Invoice,
    cause: str,
    correlation_id: str,
    void_note: CreditNote | None = None,
) -> None:
    """Publish ``InvoicePaid`` / ``InvoiceVoided`` once per invoice, when it became so and the
    announcement was not acknowledged yet; then remember it. The event id is the invoice's, so
    a retry after a crash between publishing and remembering publishes the same event, which
    consumers drop. (An invoice becomes paid once: nothing makes it owe again; voiding a paid
    invoice turns what was paid into customer credit.)"""
    announce: list[Callable[[], Awaitable[None]]] = []
    if invoice.paid_unannounced:
        event = _invoice_paid(invoice, cause, correlation_id)
        announce.append(lambda: ports.events.invoice_paid(event))
    if invoice.voided_unannounced and void_note is not None:
        voided = _invoice_voided(invoice, void_note, correlation_id)
        announce.append(lambda: ports.events.invoice_voided(voided))
    if not announce:
        return
    for publish in announce:
        await publish()
    now = datetime.now(UTC)
    paid_announced = invoice.paid_unannounced

    def remember(i: Invoice) -> None:
        if paid_announced:
            i.paid_announced(now)
        if void_note is not None:
            i.voided_announced(now)

    await _settle(ports, invoice.invoice_id, remember)


def _invoice_paid(invoice: Invoice, cause: str, correlation_id: str) -> InvoicePaid:
    """``InvoicePaid`` for an issued invoice, settled by what settled it (else ``cause``)."""
    document = invoice.document
    assert document is not None
    assert invoice.number is not None
    standing = invoice.standing()
    return InvoicePaid.create(
        PaidInvoice(
            invoice_id=invoice.invoice_id,
            invoice_number=invoice.number,
            customer_id=invoice.customer_id,
            customer_name=document.buyer.name,
            currency=document.currency,
            total=standing.total,
            paid=standing.paid,
            credited=standing.credited,
            settled_by=invoice.settled_by or cause,
        ),
        source=SOURCE,
        correlation_id=correlation_id,
        event_id=f"invoice-paid:{invoice.invoice_id}",
    )


def _invoice_voided(invoice: Invoice, void_note: CreditNote, correlation_id: str) -> InvoiceVoided:
    """``InvoiceVoided`` for an issued invoice, by the credit note that voided it."""
    document = invoice.document
    assert document is not None
    assert invoice.number is not None
    return InvoiceVoided.create(
        VoidedInvoice(
            invoice_id=invoice.invoice_id,
            invoice_number=invoice.number,
            customer_id=invoice.customer_id,
            customer_name=void_note.customer_name,
            currency=void_note.currency,
            total=document.total,
            credit_note_id=void_note.credit_note_id,
            credit_note_number=void_note.credit_note_number,
            voided_on=void_note.issue_date,
            reason=void_note.reason,
        ),
        source=SOURCE,
        correlation_id=correlation_id,
        event_id=f"invoice-voided:{invoice.invoice_id}",
    )


async def flag_overdue(
    ports: SettlementPorts, *, as_of: date, correlation_id: str
) -> list[OverdueInvoice]:
    """Mark invoices past their due date with money outstanding as overdue; publish one
    ``InvoiceOverdue`` per such invoice and day (event id: invoice and day, so running the job
    twice a day publishes nothing new that notify would act on)."""
    found: list[OverdueInvoice] = []
    for candidate in await ports.invoices.open_due_before(as_of):
        if candidate.number is None:
            continue
        invoice, events = await _settle(ports, candidate.number, lambda i: i.mark_overdue(as_of))
        document = invoice.document
        assert document is not None
        assert document.due_date is not None
        for event in events:
            if not isinstance(event, BecameOverdue):
                continue
            found.append(
                OverdueInvoice(
                    invoice_id=invoice.invoice_id,
                    invoice_number=str(invoice.number),
                    customer_id=invoice.customer_id,
                    customer_name=document.buyer.name,
                    currency=document.currency,
                    total=document.total,
                    outstanding=event.outstanding,
                    due_date=document.due_date,
                    as_of=as_of,
                    days_overdue=event.days_overdue,
                )
            )
    if found:
        await ports.events.invoice_overdue(
            [
                InvoiceOverdue.create(
                    o,
                    source=SOURCE,
                    correlation_id=correlation_id,
                    event_id=f"invoice-overdue:{o.invoice_id}:{as_of.isoformat()}",
                )
                for o in found
            ]
        )
    return found
