"""Use cases: close a billing period ("Generate invoices").

Closing is two steps, so that it is exact without multi-document transactions:

1. :func:`request_close` puts a ``PeriodClosing`` marker for each customer into the charge
   stream, keyed by customer like the charges (the CLI and the close command do this);
2. the consumer of that customer's partition meets the marker after every charge rated before it
   and calls :func:`close_invoices` with the markers of its batch: each invoice is frozen where
   its marker stands (:func:`start_close`: later charges go to the next invoice), assembled from
   its draft's sums (one document read, however many charges it has) and given the next number
   of its invoicing entity's series, in stream order; then the batch's invoices are rendered
   together in the PDF process pool (:func:`finish_closes`), stored, written finalized and
   announced with ``InvoiceFinalized``.

Every step is idempotent: a marker delivered twice, or a close that crashed half-way, finishes
what was left and issues nothing twice. :func:`preview` computes the same invoices and writes
nothing (the dry run).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.domain.credit import applied_entry, negative_total_entry
from billing_invoicing.domain.invoice import (
    ChargeGroup,
    InvoiceDocument,
    InvoiceStatus,
    assemble_invoice,
    due_date_for,
    format_invoice_number,
    invoice_id_for,
    with_credit_applied,
)
from billing_invoicing.domain.model import (
    CurrencyMismatchError,
    Invoice,
    charge_groups,
    ledger_of,
)
from billing_invoicing.domain.units import from_units
from billing_invoicing.ports import ConcurrentUpdateError, CreditLedger
from billing_schemas.catalog import Customer, InvoicingEntity
from billing_schemas.events import (
    ChargeRated,
    FinalizedInvoice,
    InvoiceFinalized,
    PeriodClose,
    PeriodClosing,
)

SOURCE = "billing-invoicing"


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


class CatalogError(LookupError):
    """The catalog lacks what closing an invoice needs (the marker is dead-lettered)."""


@dataclass(frozen=True)
class Outcome:
    """One invoice of a period close, as the CLI prints it."""

    invoice_id: str
    customer_id: str
    number: str | None
    total: Decimal
    currency: str
    status: str
    action: str  # finalized | already finalized | would finalize | skipped: <why>


@dataclass
class InvoicingPorts:
    """What the use case needs."""

    catalog: MongoCatalogRepository
    invoices: MongoInvoiceRepository
    renderer: PdfRendering
    pdfs: PdfStorage
    events: EventPublishing
    credits: CreditLedger | None = None
    """The customers' credit balances, applied at finalization (None: no credit is applied,
    as for tools that keep no ledger)."""


async def request_close(
    ports: InvoicingPorts,
    *,
    period: str,
    customer_id: str | None,
    issue_date: date,
    correlation_id: str,
) -> list[str]:
    """Put a close marker into the charge stream for each customer of the period still open.

    Returns the invoice ids being closed (finalized ones are left alone).
    """
    customers = [customer_id] if customer_id else await customers_of_period(ports, period)
    markers = []
    for cid in customers:
        if await ports.invoices.is_published(invoice_id_for(cid, period)):
            continue
        markers.append(
            PeriodClosing.create(
                PeriodClose(customer_id=cid, period=period, issue_date=issue_date),
                source=SOURCE,
                correlation_id=correlation_id,
                event_id=f"period-closing:{cid}:{period}",
            )
        )
    await ports.events.period_closing(markers)
    return [invoice_id_for(m.data.customer_id, period) for m in markers]


async def customers_of_period(ports: InvoicingPorts, period: str) -> list[str]:
    """Customers invoiced for the period: those with charges, and those with a subscription."""
    with_charges = await ports.invoices.customers_with_invoices(period)
    subscribed = await ports.catalog.customers_with_subscriptions(period)
    return sorted({*with_charges, *subscribed})


async def assemble(
    ports: InvoicingPorts,
    *,
    customer: Customer,
    entity: InvoicingEntity,
    period: str,
    groups: list[ChargeGroup],
) -> InvoiceDocument:
    """Assemble the invoice with the catalog's plans and tax rates (CatalogError if missing)."""
    try:
        return assemble_invoice(
            customer=customer,
            entity=entity,
            period=period,
            groups=groups,
            plans=await ports.catalog.plans(),
            tax_rates=await ports.catalog.tax_rates(),
        )
    except LookupError as exc:  # a plan or a tax rate the invoice needs is not in the catalog
        msg = f"cannot assemble {invoice_id_for(customer.id, period)}: {exc}"
        raise CatalogError(msg) from exc


async def outcomes(
    ports: InvoicingPorts, *, period: str, customer_id: str | None = None
) -> list[Outcome]:
    """The period's invoices as they stand."""
    return [
        _outcome(doc)
        for doc in await ports.invoices.list_invoices(period=period, customer_id=customer_id)
    ]


def _outcome(doc: dict[str, Any], action: str | None = None) -> Outcome:
    document = doc.get("document") or {}
    total_units = doc.get("total_units")
    return Outcome(
        invoice_id=doc["_id"],
        customer_id=doc["customer_id"],
        number=doc.get("number"),
        total=Decimal(0)
        if total_units is None
        else from_units(total_units, document.get("currency") or doc.get("currency")),
        currency=document.get("currency", ""),
        status=doc["status"],
        action=action or ("finalized" if doc.get("published_at") else doc["status"]),
    )


async def preview(
    ports: InvoicingPorts, *, period: str, customer_id: str | None = None
) -> list[Outcome]:
    """The dry run: what closing the period would issue now; writes nothing."""
    customers = [customer_id] if customer_id else await customers_of_period(ports, period)
    result = []
    for cid in customers:
        invoice_id = invoice_id_for(cid, period)
        invoice = await ports.invoices.get(invoice_id)
        if invoice is not None and not invoice.is_draft:
            doc = await ports.invoices.invoice(invoice_id)
            assert doc is not None
            result.append(_outcome(doc, "already finalized"))
            continue
        customer = await ports.catalog.customer(cid)
        entity = None
        if customer is not None:
            entity = await ports.catalog.invoicing_entity(customer.invoicing_entity)
        if customer is None or entity is None:
            why = "skipped: customer or invoicing entity not in the catalog"
            result.append(Outcome(invoice_id, cid, None, Decimal(0), "", "draft", why))
            continue
        sums = await ports.invoices.draft_sums(invoice_id)
        groups = [] if sums is None else charge_groups(sums.lines)
        try:
            draft = await assemble(
                ports, customer=customer, entity=entity, period=period, groups=groups
            )
        except CatalogError as exc:
            result.append(
                Outcome(invoice_id, cid, None, Decimal(0), "", "draft", f"skipped: {exc}")
            )
            continue
        result.append(
            Outcome(invoice_id, cid, None, draft.total, draft.currency, "draft", "would finalize")
        )
    return result


@dataclass
class Closing:
    """An invoice frozen and numbered at its marker, waiting to be rendered and issued."""

    invoice: Invoice
    document: InvoiceDocument
    marker: PeriodClosing
    pdf: asyncio.Task[bytes]
    """Its rendering, under way in the PDF process pool."""


async def close_invoice(ports: InvoicingPorts, marker: PeriodClosing) -> Outcome:
    """Finalize one customer's invoice for one period (see :func:`close_invoices`)."""
    closing = await start_close(ports, marker)
    if isinstance(closing, Outcome):
        return closing
    [outcome] = await finish_closes(ports, [closing])
    return outcome


async def start_close(ports: InvoicingPorts, marker: PeriodClosing) -> Closing | Outcome:
    """Freeze the marker's invoice and give it its number (or finish a crashed close's
    announcement and say so); raises :class:`CatalogError` leaving the invoice in draft when
    the catalog lacks what it needs."""
    customer_id, period = marker.data.customer_id, marker.data.period
    invoice_id = invoice_id_for(customer_id, period)
    customer = await ports.catalog.customer(customer_id)
    if customer is None:
        msg = f"cannot close {invoice_id}: customer {customer_id!r} is not in the catalog"
        raise CatalogError(msg)
    entity = await ports.catalog.invoicing_entity(customer.invoicing_entity)
    if entity is None:
        msg = f"cannot close {invoice_id}: invoicing entity {customer.invoicing_entity!r} missing"
        raise CatalogError(msg)

    # the catalog must hold the plans and tax rates before the invoice is frozen, so that a
    # missing one leaves it in draft (the marker is dead-lettered and may be replayed)
    await assemble(ports, customer=customer, entity=entity, period=period, groups=[])
    invoice = await ports.invoices.get(invoice_id) or Invoice.new(invoice_id)
    ledger = None
    if invoice.is_draft:
        # the draft's sums move from its ledger onto the invoice (written first: a crash in
        # between leaves only a stale ledger entry, never read for an invoice past draft)
        n = ledger_of(customer_id)
        ledger = (await ports.invoices.get_ledgers([n]))[n]
        sums = ledger.drafts.get(invoice_id)
        if sums is not None:  # charges in another currency leave the invoice in draft
            try:
                sums.check_currency(invoice_id, customer.currency)
            except CurrencyMismatchError as exc:
                ids = await _charges_not_in(ports, invoice_id, customer.currency)
                raise CatalogError(f"{exc} (charges {', '.join(ids)})") from None
        invoice.start_finalizing(marker.data.issue_date, ledger.take(invoice_id))
    if invoice.status is not InvoiceStatus.FINALIZING:  # issued before
        if invoice.document is not None and not await ports.invoices.is_published(invoice_id):
            # crashed after writing, before publishing
            await _publish(ports, invoice, marker)
        return _outcome_of(invoice, "already finalized")

    assert invoice.issue_date is not None
    issue_date = invoice.issue_date
    draft = await assemble(
        ports, customer=customer, entity=entity, period=period, groups=invoice.charge_groups()
    )
    took_credit = await take_customer_credit(ports, invoice, draft)
    if invoice.seq is None or ledger is not None or took_credit:
        if invoice.seq is None:  # kept on the invoice: a close resumed after a crash finds it
            invoice.seq = await ports.invoices.claim_number(
                entity=entity.id, year=issue_date.year, invoice_id=invoice_id
            )
        await ports.invoices.save(invoice)
    await record_credit_taken(ports, invoice, draft)
    if ledger is not None:
        with contextlib.suppress(ConcurrentUpdateError):  # a stale entry is harmless
            await ports.invoices.save_ledger(ledger)
    document = draft.model_copy(
        update={
            "number": format_invoice_number(entity.number_prefix, issue_date.year, invoice.seq),
            "status": InvoiceStatus.FINALIZED,
            "issue_date": issue_date,
            "due_date": due_date_for(issue_date, customer.payment_terms_days),
            # a negative invoice owes nothing: what it owes the customer is customer credit
            "outstanding": max(draft.total, Decimal(0)),
        }
    )
    document = with_credit_applied(document, invoice.credit_applied or Decimal(0))
    # rendering starts at once, in the process pool, while the next markers are frozen
    return Closing(invoice, document, marker, asyncio.create_task(ports.renderer.render(document)))


async def take_customer_credit(
    ports: InvoicingPorts, invoice: Invoice, draft: InvoiceDocument
) -> bool:
    """Decide, once, how much of the customer's credit balance in the invoice's currency the
    frozen invoice takes (``domain/credit.py``); whether it was decided now."""
    if ports.credits is None or invoice.credit_applied is not None:
        return False
    balance = await ports.credits.balances_of(invoice.customer_id)
    invoice.take_credit(balance.get(draft.currency, Decimal(0)), draft.total, draft.currency)
    return True


async def record_credit_taken(
    ports: InvoicingPorts, invoice: Invoice, draft: InvoiceDocument
) -> None:
    """Record the credit the invoice took in the ledger (once: a resumed close records it if a
    crash came between saving the invoice and this)."""
    if ports.credits is None or not invoice.credit_applied:
        return
    await ports.credits.add_credit(
        applied_entry(
            customer_id=invoice.customer_id,
            invoice_id=invoice.invoice_id,
            currency=draft.currency,
            amount=invoice.credit_applied,
            period=invoice.period,
            at=datetime.now(UTC),
        )
    )


async def _charges_not_in(
    ports: InvoicingPorts, invoice_id: str, currency: str, at_most: int = 5
) -> list[str]:
    """Ids of the invoice's charges in another currency (the first few, then "..."): read
    only when a close is refused for them."""
    ids: list[str] = []
    async for doc in ports.invoices.charges_of(invoice_id):
        if doc.get("currency") != currency:
            if len(ids) == at_most:
                return [*ids, "..."]
            ids.append(str(doc["_id"]))
    return ids


async def finish_closes(ports: InvoicingPorts, closings: list[Closing]) -> list[Outcome]:
    """:func:`finish_close` each frozen invoice in turn (the pool renders the next ones
    meanwhile); a failure stops the renderings of the rest (their batch comes again)."""
    try:
        return [await finish_close(ports, closing) for closing in closings]
    finally:
        cancel_renderings(closings)


def cancel_renderings(closings: list[Closing]) -> None:
    """Stop the renderings still under way (after a failure: the batch comes again)."""
    for closing in closings:
        closing.pdf.cancel()


async def finish_close(ports: InvoicingPorts, closing: Closing) -> Outcome:
    """Store, issue and announce a frozen invoice once its rendering (started when it was
    frozen) comes back."""
    pdf = await closing.pdf
    invoice, document = closing.invoice, closing.document
    assert document.number is not None
    assert invoice.seq is not None
    stored = await ports.pdfs.save(invoice_id=invoice.invoice_id, number=document.number, pdf=pdf)
    if document.total < 0:  # recorded before the invoice is, so a retry records it too
        if ports.credits is None:
            await ports.invoices.record_negative_total(document)
        else:
            await ports.credits.add_credit(negative_total_entry(document, datetime.now(UTC)))
    invoice.finalize(
        document, seq=invoice.seq, pdf_file_id=stored.file_id, pdf_sha256=stored.sha256
    )
    await ports.invoices.save(invoice)
    await _publish(ports, invoice, closing.marker)
    return _outcome_of(invoice, "finalized")


def _outcome_of(invoice: Invoice, action: str) -> Outcome:
    document = invoice.document
    return Outcome(
        invoice_id=invoice.invoice_id,
        customer_id=invoice.customer_id,
        number=invoice.number,
        total=Decimal(0) if document is None else document.total,
        currency="" if document is None else document.currency,
        status=invoice.status.value,
        action=action,
    )


async def _publish(ports: InvoicingPorts, invoice: Invoice, marker: PeriodClosing) -> None:
    document = invoice.document
    assert document is not None
    assert document.number is not None
    assert document.issue_date is not None
    assert document.due_date is not None
    assert invoice.pdf_file_id is not None
    assert invoice.pdf_sha256 is not None
    event = InvoiceFinalized.create(
        FinalizedInvoice(
            invoice_id=document.invoice_id,
            invoice_number=document.number,
            customer_id=document.customer_id,
            customer_name=document.buyer.name,
            invoicing_entity_id=document.invoicing_entity_id,
            period=document.period,
            issue_date=document.issue_date,
            due_date=document.due_date,
            currency=document.currency,
            subtotal=document.subtotal,
            tax=document.tax,
            total=document.total,
            outstanding=document.outstanding,
            line_count=len(document.lines),
            pdf_file_id=invoice.pdf_file_id,
            pdf_sha256=invoice.pdf_sha256,
        ),
        source=SOURCE,
        correlation_id=marker.correlation_id,
        event_id=f"invoice-finalized:{document.invoice_id}",
    )
    await ports.events.invoice_finalized(event)
    await ports.invoices.mark_published(document.invoice_id)
