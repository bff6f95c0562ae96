"""Use cases after finalization: payments, credit notes (and voiding), overdue invoices.

Each is idempotent (see ``adapters/settlement_repo.py``): a payment is identified by its invoice,
method and reference, a credit note by its invoice and what it credits, an overdue notice by its
invoice and day. Each publishes its event after the database holds the fact, so a crash
between the two is repaired by running the command again (the event id is the same; notify
sends one email per id).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.settlement_repo import (
    CREDIT_NOTES,
    PAYMENTS,
    MongoSettlementRepository,
    amount_of,
    settlement_of,
)
from billing_invoicing.domain.invoice import InvoiceStatus
from billing_invoicing.domain.settlement import (
    OPEN_STATUSES,
    PAYABLE_STATUSES,
    Settlement,
    SettlementError,
    check_amount,
    credit_note_tax,
    days_overdue,
    payment_id_for,
)
from billing_invoicing.domain.units import to_units
from billing_invoicing.service.credit_note_documents import (
    CreditNotePdfPorts,
    credit_note_document,
    issued_invoice,
    store_credit_note_pdf,
)
from billing_schemas.catalog import PaymentMethod
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
PAID_ANNOUNCED = "paid_announced_at"
VOIDED_ANNOUNCED = "voided_announced_at"


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


@dataclass
class SettlementPorts:
    """What the settlement use cases need."""

    catalog: MongoCatalogRepository
    invoices: MongoInvoiceRepository
    settlements: MongoSettlementRepository
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
    payments: list[dict[str, Any]]
    credit_notes: list[dict[str, Any]]
    customer_credit: Decimal


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


async def _finalized(ports: SettlementPorts, number: str) -> dict[str, Any]:
    doc = await ports.settlements.invoice_by_number(number)
    if doc is None or not doc.get("number"):
        msg = f"no finalized invoice numbered {number!r}"
        raise InvoiceNotFoundError(msg)
    if doc.get("published_at") is None:
        msg = f"invoice {number} is still being finalized; try again in a moment"
        raise SettlementError(msg)
    return doc


async def dues(ports: SettlementPorts, number: str) -> Dues:
    """The dues breakdown of an invoice, with the ways to pay it."""
    doc = await _finalized(ports, number)
    document = doc["document"]
    standing = settlement_of(doc)
    currency = str(doc["currency"])
    balance = await ports.settlements.customer_credit(doc["customer_id"])
    return Dues(
        invoice_id=doc["_id"],
        number=doc["number"],
        customer_id=doc["customer_id"],
        customer_name=document["buyer"]["name"],
        currency=currency,
        status=str(doc["status"]),
        issue_date=str(doc.get("issue_date")),
        due_date=str(doc.get("due_date")),
        subtotal=Decimal(document["subtotal"]),
        taxes=[(t["label"], Decimal(t["tax"])) for t in document.get("taxes", [])],
        total=standing.total,
        paid=standing.paid,
        credited=standing.credited,
        outstanding=standing.outstanding,
        payment_methods=[PaymentMethod.model_validate(m) for m in document["payment_methods"]],
        payments=await ports.settlements.payments_of(doc["_id"]),
        credit_notes=await ports.settlements.credit_notes_of(doc["_id"]),
        customer_credit=amount_of(balance.get(currency, 0), currency),
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
    customer credit (explicitly, in ``invoicing_customer_credits``). Recording the same payment
    (invoice, method, reference) again changes nothing; with another amount it is refused.
    """
    doc = await _finalized(ports, number)
    currency = str(doc["currency"])
    if doc["status"] not in PAYABLE_STATUSES:
        msg = f"invoice {number} is {doc['status']}: no payment can be recorded on it"
        raise SettlementError(msg)
    check_amount(amount, currency, "the amount paid")
    if not reference.strip():
        msg = "a payment needs a reference (the bank's or the card processor's)"
        raise SettlementError(msg)
    method = _method(
        [PaymentMethod.model_validate(m) for m in doc["document"]["payment_methods"]], method
    )
    payment_id = payment_id_for(doc["_id"], method, reference)
    stored, new = await ports.settlements.insert_once(
        PAYMENTS,
        {
            "_id": payment_id,
            "invoice_id": doc["_id"],
            "invoice_number": doc["number"],
            "customer_id": doc["customer_id"],
            "amount_units": to_units(amount, currency),
            "currency": currency,
            "method": method,
            "reference": reference,
            "paid_on": paid_on.isoformat(),
        },
    )
    if amount_of(stored["amount_units"], currency) != amount:
        msg = (
            f"payment {reference!r} by {method} on {number} is already recorded with amount "
            f"{amount_of(stored['amount_units'], currency)}, not {amount}"
        )
        raise SettlementError(msg)
    await ports.settlements.apply(
        doc["_id"],
        field="paid_units",
        ids_field="payment_ids",
        item_id=payment_id,
        units=int(stored["amount_units"]),
    )
    after, standing = await ports.settlements.refresh(doc["_id"])
    added = await ports.settlements.record_overpayment(after, standing, payment_id)
    # what was outstanding right after this payment, fixed the first time it is known, so that
    # a retry publishes the same figure
    outstanding_after = await ports.settlements.outstanding_after(
        payment_id, to_units(standing.outstanding, currency)
    )
    payment = Payment(
        payment_id=payment_id,
        invoice_id=doc["_id"],
        invoice_number=doc["number"],
        customer_id=doc["customer_id"],
        amount=amount_of(stored["amount_units"], currency),
        currency=currency,
        method=method,
        reference=reference,
        paid_on=date.fromisoformat(stored["paid_on"]),
        outstanding_after=amount_of(outstanding_after, currency),
    )
    if stored.get("published_at") is None:
        await ports.events.payment_recorded(
            PaymentRecorded.create(
                payment,
                source=SOURCE,
                correlation_id=correlation_id,
                event_id=f"payment-recorded:{payment_id}",
            )
        )
        await ports.settlements.mark_published(PAYMENTS, payment_id)
    await _announce_paid(ports, after, standing, payment_id, correlation_id)
    return PaymentOutcome(payment, standing.status, amount_of(added, currency), not new)


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
    doc = await _finalized(ports, number)
    currency = str(doc["currency"])
    standing = settlement_of(doc)
    if not reason.strip():
        msg = "a credit note needs a reason"
        raise SettlementError(msg)
    creditable = standing.owed
    void = amount is None
    credit = creditable if amount is None else amount
    key = "void" if void else f"{credit}:{reason}:{issue_date.isoformat()}"
    note_id = f"{doc['_id']}:cn:" + hashlib.sha256(key.encode()).hexdigest()[:12]
    notes = await ports.settlements.credit_notes_of(doc["_id"])
    # voiding again finishes what a crashed void left (its events); anything else is refused
    if standing.voided and not (void and any(n["_id"] == note_id for n in notes)):
        msg = f"invoice {number} is void already"
        raise SettlementError(msg)
    if all(n["_id"] != note_id for n in notes):  # a new one (a retry skips the checks)
        if credit <= 0:
            msg = f"invoice {number} has nothing left to credit"
            raise SettlementError(msg)
        check_amount(credit, currency, "the amount credited")
        if credit > creditable:
            msg = f"cannot credit {credit} {currency} on {number}: only {creditable} is left"
            raise SettlementError(msg)
    entity = str(doc["document"]["invoicing_entity_id"])
    seq = await ports.invoices.claim_number(
        entity=f"{entity}:credit-notes", year=issue_date.year, invoice_id=note_id
    )
    prefix = await _prefix(ports, entity)
    note_number = f"{prefix}CN-{issue_date.year}-{seq:06d}"
    earlier = [n for n in notes if n["_id"] != note_id]
    tax = credit_note_tax(
        credit,
        credited_before=sum((amount_of(n["amount_units"], currency) for n in earlier), Decimal(0)),
        tax_credited_before=sum(
            (amount_of(n.get("tax_units"), currency) for n in earlier), Decimal(0)
        ),
        total=standing.total,
        tax=amount_of(doc.get("tax_units"), currency),
        currency=currency,
    )
    stored, new = await ports.settlements.insert_once(
        CREDIT_NOTES,
        {
            "_id": note_id,
            "number": note_number,
            "invoice_id": doc["_id"],
            "invoice_number": doc["number"],
            "customer_id": doc["customer_id"],
            "currency": currency,
            "amount_units": to_units(credit, currency),
            "tax_units": to_units(tax, currency),
            "net_units": to_units(credit - tax, currency),
            "reason": reason,
            "void": void,
            "issue_date": issue_date.isoformat(),
        },
    )
    await ports.settlements.apply(
        doc["_id"],
        field="credited_units",
        ids_field="credit_note_ids",
        item_id=note_id,
        units=int(stored["amount_units"]),
    )
    if stored["void"]:
        await ports.settlements.mark(doc["_id"], {"voided_at": stored["issue_date"]})
    after, now = await ports.settlements.refresh(doc["_id"])
    added = await ports.settlements.record_overpayment(after, now, note_id)
    pdf = None
    if ports.credit_note_pdfs is not None:  # stored before the event that names it
        pdf = await store_credit_note_pdf(
            ports.credit_note_pdfs,
            issued_invoice(doc),
            credit_note_document(stored, currency),
            note_id,
        )
    note = CreditNote(
        credit_note_id=note_id,
        credit_note_number=str(stored["number"]),
        invoice_id=doc["_id"],
        invoice_number=doc["number"],
        customer_id=doc["customer_id"],
        customer_name=doc["document"]["buyer"]["name"],
        issue_date=date.fromisoformat(stored["issue_date"]),
        currency=currency,
        total=amount_of(stored["amount_units"], currency),
        reason=str(stored["reason"]),
        pdf_file_id=None if pdf is None else pdf.file_id,
        pdf_sha256=None if pdf is None else pdf.sha256,
    )
    if stored.get("published_at") is None:
        await ports.events.credit_note_issued(
            CreditNoteIssued.create(
                note,
                source=SOURCE,
                correlation_id=correlation_id,
                event_id=f"credit-note-issued:{note_id}",
            )
        )
        await ports.settlements.mark_published(CREDIT_NOTES, note_id)
    if stored["void"]:
        await _announce_voided(ports, after, note, correlation_id)
    else:
        await _announce_paid(ports, after, now, note_id, correlation_id)
    return CreditNoteOutcome(note, now.status, amount_of(added, currency), not new)


async def _announce_paid(
    ports: SettlementPorts,
    doc: dict[str, Any],
    standing: Settlement,
    cause: str,
    correlation_id: str,
) -> None:
    """Publish ``InvoicePaid`` when the invoice is paid and it was not announced yet.

    An invoice becomes paid once (nothing makes it owe again; voiding a paid invoice turns
    what was paid into customer credit). The event id is the invoice's, so a retry after a
    crash between publishing and marking publishes the same event, which consumers drop.
    """
    if standing.status is not InvoiceStatus.PAID or doc.get(PAID_ANNOUNCED) is not None:
        return
    await ports.events.invoice_paid(
        InvoicePaid.create(
            PaidInvoice(
                invoice_id=doc["_id"],
                invoice_number=doc["number"],
                customer_id=doc["customer_id"],
                customer_name=doc["document"]["buyer"]["name"],
                currency=str(doc["currency"]),
                total=standing.total,
                paid=standing.paid,
                credited=standing.credited,
                settled_by=cause,
            ),
            source=SOURCE,
            correlation_id=correlation_id,
            event_id=f"invoice-paid:{doc['_id']}",
        )
    )
    await ports.settlements.mark(doc["_id"], {PAID_ANNOUNCED: datetime.now(UTC)})


async def _announce_voided(
    ports: SettlementPorts, doc: dict[str, Any], note: CreditNote, correlation_id: str
) -> None:
    """Publish ``InvoiceVoided`` once per invoice (same reasoning as :func:`_announce_paid`)."""
    if doc.get(VOIDED_ANNOUNCED) is not None:
        return
    await ports.events.invoice_voided(
        InvoiceVoided.create(
            VoidedInvoice(
                invoice_id=doc["_id"],
                invoice_number=doc["number"],
                customer_id=doc["customer_id"],
                customer_name=note.customer_name,
                currency=note.currency,
                total=amount_of(doc.get("total_units"), note.currency),
                credit_note_id=note.credit_note_id,
                credit_note_number=note.credit_note_number,
                voided_on=note.issue_date,
                reason=note.reason,
            ),
            source=SOURCE,
            correlation_id=correlation_id,
            event_id=f"invoice-voided:{doc['_id']}",
        )
    )
    await ports.settlements.mark(doc["_id"], {VOIDED_ANNOUNCED: datetime.now(UTC)})


async def _prefix(ports: SettlementPorts, entity_id: str) -> str:
    entity = await ports.catalog.invoicing_entity(entity_id)
    return "" if entity is None else entity.number_prefix


async def flag_overdue(
    ports: SettlementPorts, *, as_of: date, correlation_id: str
) -> list[OverdueInvoice]:
    """Mark invoices past their due date with money outstanding as overdue; publish one
    ``InvoiceOverdue`` per such invoice and day (event id: invoice and day, so running the job
    twice a day publishes nothing new that notify would act on)."""
    found: list[OverdueInvoice] = []
    for doc in await ports.settlements.open_invoices_due_before(as_of):
        if InvoiceStatus(doc["status"]) not in OPEN_STATUSES:
            continue
        due = date.fromisoformat(doc["due_date"])
        await ports.settlements.mark(doc["_id"], {"overdue_since": as_of.isoformat()})
        after, standing = await ports.settlements.refresh(doc["_id"])
        if standing.outstanding <= 0 or standing.status is not InvoiceStatus.OVERDUE:
            continue
        found.append(
            OverdueInvoice(
                invoice_id=doc["_id"],
                invoice_number=doc["number"],
                customer_id=doc["customer_id"],
                customer_name=after["document"]["buyer"]["name"],
                currency=str(doc["currency"]),
                total=standing.total,
                outstanding=standing.outstanding,
                due_date=due,
                as_of=as_of,
                days_overdue=days_overdue(due, as_of),
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
