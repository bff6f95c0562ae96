"""Use cases: close a billing period ("Generate invoices").

Closing is two steps, so that it is exact without multi-document transactions:

1. :func:`request_close` puts a ``PeriodClosing`` marker for each customer into the charge
   stream, keyed by customer like the charges (the CLI and the close command do this);
2. the consumer of that customer's partition meets the marker after every charge rated before it
   and calls :func:`start_closes` with each run of markers of its batch: the catalog is read
   once for the run, each invoice is frozen where its marker stands (later charges go to the
   next invoice), assembled from its draft's sums (one ledger read, however many charges it
   has) and given the next number of its invoicing entity's series, in stream order, and its
   rendering starts in the PDF process pool at once; the frozen invoices are then written
   together. Each is issued by :func:`finish_close` as soon as its rendering is back: its PDF
   stored, written finalized and announced with ``InvoiceFinalized``. The renderer never waits
   on the database, so a close runs at the pace of the pool.

Every step is idempotent: a marker delivered twice, or a close that crashed half-way, finishes
what was left and issues nothing twice. :func:`preview` computes the same invoices and writes
nothing (the dry run).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from billing_catalog.models import Customer, InvoicingEntity, Plan, TaxRate
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.stored_rows import invoice_row_of
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
    DraftLedger,
    Invoice,
    charge_groups,
    ledger_of,
)
from billing_invoicing.domain.stored import InvoiceRow
from billing_invoicing.domain.units import from_units
from billing_invoicing.ports import (
    ConcurrentUpdateError,
    CreditLedger,
    EventPublishing,
    PdfRendering,
    PdfStorage,
)
from billing_schemas.events import (
    FinalizedInvoice,
    InvoiceFinalized,
    PeriodClose,
    PeriodClosing,
)

SOURCE = "billing-invoicing"


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
    # one look-up by _id per customer, all at once (one after another they were ~1-3 s of a
    # close of a few hundred invoices before its first marker was sent)
    published = await asyncio.gather(
        *(ports.invoices.is_published(invoice_id_for(cid, period)) for cid in customers)
    )
    markers = []
    for cid, done in zip(customers, published, strict=True):
        if done:
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
        _outcome(invoice_row_of(doc))
        for doc in await ports.invoices.list_invoices(period=period, customer_id=customer_id)
    ]


def _outcome(row: InvoiceRow, action: str | None = None) -> Outcome:
    total_units = row.total_units
    return Outcome(
        invoice_id=row.invoice_id,
        customer_id=row.customer_id,
        number=row.number,
        total=Decimal(0)
        if total_units is None
        else from_units(total_units, row.document_currency or row.currency or ""),
        currency=row.document_currency or "",
        status=str(row.status),
        action=action or ("finalized" if row.published else str(row.status)),
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
            result.append(_outcome(invoice_row_of(doc), "already finalized"))
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


@dataclass(frozen=True)
class CatalogView:
    """What closing a batch of invoices reads from the catalog, read once for the batch."""

    customers: dict[str, Customer]
    entities: dict[str, InvoicingEntity]
    plans: dict[str, Plan]
    tax_rates: list[TaxRate]

    def assemble(
        self, *, customer: Customer, entity: InvoicingEntity, period: str, groups: list[ChargeGroup]
    ) -> InvoiceDocument:
        """:func:`assemble_invoice` with these plans and tax rates (CatalogError if missing)."""
        try:
            return assemble_invoice(
                customer=customer,
                entity=entity,
                period=period,
                groups=groups,
                plans=self.plans,
                tax_rates=self.tax_rates,
            )
        except LookupError as exc:  # a plan or a tax rate the invoice needs is not in the catalog
            msg = f"cannot assemble {invoice_id_for(customer.id, period)}: {exc}"
            raise CatalogError(msg) from exc


async def read_catalog(ports: InvoicingPorts, customer_ids: Iterable[str]) -> CatalogView:
    """The customers, their invoicing entities, the plans and the tax rates: a look-up by
    ``_id`` per customer and entity (together), one read of the plans and of the tax rates."""
    ids = sorted(set(customer_ids))
    found = await asyncio.gather(*(ports.catalog.customer(i) for i in ids))
    customers = {c.id: c for c in found if c is not None}
    entity_ids = sorted({c.invoicing_entity for c in customers.values()})
    entities = await asyncio.gather(*(ports.catalog.invoicing_entity(e) for e in entity_ids))
    return CatalogView(
        customers=customers,
        entities={e.id: e for e in entities if e is not None},
        plans=await ports.catalog.plans(),
        tax_rates=await ports.catalog.tax_rates(),
    )


async def close_invoice(ports: InvoicingPorts, marker: PeriodClosing) -> Outcome:
    """Finalize one customer's invoice for one period (see :func:`start_closes`)."""
    [closing] = await start_closes(ports, [marker])
    if isinstance(closing, Exception):
        raise closing
    if isinstance(closing, Outcome):
        return closing
    try:
        return await finish_close(ports, closing)
    finally:
        cancel_renderings([closing])


async def start_closes(
    ports: InvoicingPorts,
    markers: Sequence[PeriodClosing],
    *,
    isolate: tuple[type[Exception], ...] = (CatalogError,),
) -> list[Closing | Outcome | Exception]:
    """Freeze the markers' invoices in stream order and give each its number, starting each
    rendering as soon as it is numbered (or finish a crashed close's announcement and say so).

    The catalog is read once for all of them; the claims of numbers go one by one (in stream
    order, so each series stays gapless), then the frozen invoices are written together and each
    draft ledger they came from once. A marker whose invoice cannot be closed for a reason of
    its own (an ``isolate`` exception: :class:`CatalogError` when the catalog lacks what it
    needs) leaves it in draft and gets the exception in its place; the others go on. The
    markers must be of distinct invoices.
    """
    ids = [invoice_id_for(m.data.customer_id, m.data.period) for m in markers]
    if len(set(ids)) != len(ids):
        msg = "start_closes takes one marker per invoice"
        raise ValueError(msg)
    catalog = await read_catalog(ports, (m.data.customer_id for m in markers))
    loaded = await ports.invoices.get_many(ids)
    ledgers = await ports.invoices.get_ledgers({ledger_of(m.data.customer_id) for m in markers})
    balances = await _credit_balances(ports, markers, loaded)
    results: list[Closing | Outcome | Exception] = []
    to_save: list[Invoice] = []
    taken: set[int] = set()
    try:
        for marker in markers:
            try:  # what can refuse a marker is checked before anything changes
                plan = await _plan_close(ports, catalog, loaded, ledgers, marker)
            except isolate as exc:
                results.append(exc)
                continue
            if isinstance(plan, Outcome):
                results.append(plan)
                continue
            # from here on a failure fails the batch (it comes again): a ledger the invoice's
            # sums were taken from must not be written without the invoice
            unnumbered = plan.invoice.seq is None
            closing, took_credit = await _freeze_and_number(ports, plan, balances)
            results.append(closing)
            if plan.sums_from is not None or unnumbered or took_credit:
                to_save.append(closing.invoice)
            if plan.sums_from is not None:
                taken.add(plan.sums_from)
        # the invoices first, then the ledgers they were taken from: a crash in between leaves
        # only stale ledger entries, never read for an invoice past draft
        await _together(ports.invoices.save(invoice) for invoice in to_save)
        # the credit the invoices took, in the customer's ledger (once, resumed closes too)
        closings = [r for r in results if isinstance(r, Closing)]
        await _together(record_credit_taken(ports, c.invoice, c.document) for c in closings)
        for n in sorted(taken):
            with contextlib.suppress(ConcurrentUpdateError):  # a stale entry is harmless
                await ports.invoices.save_ledger(ledgers[n])
    except BaseException:
        cancel_renderings(r for r in results if isinstance(r, Closing))
        raise
    return results


async def _together(writes: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run the writes concurrently; the first failure stops the others and is raised as is."""
    tasks = [asyncio.ensure_future(w) for w in writes]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


@dataclass
class _ClosePlan:
    """An invoice about to be frozen, with everything its close needs, checked."""

    invoice: Invoice
    marker: PeriodClosing
    customer: Customer
    entity: InvoicingEntity
    draft: InvoiceDocument
    """Assembled from the lines it is frozen with."""
    sums_from: int | None
    """The ledger its draft's sums are taken from (None: frozen before, resumed)."""
    ledger: DraftLedger | None


async def _plan_close(
    ports: InvoicingPorts,
    catalog: CatalogView,
    loaded: dict[str, Invoice],
    ledgers: dict[int, DraftLedger],
    marker: PeriodClosing,
) -> _ClosePlan | Outcome:
    """Check that the marker's invoice can be closed (CatalogError if not) and assemble it,
    changing nothing; or finish a crashed close's announcement and say so."""
    customer_id, period = marker.data.customer_id, marker.data.period
    invoice_id = invoice_id_for(customer_id, period)
    customer = catalog.customers.get(customer_id)
    if customer is None:
        msg = f"cannot close {invoice_id}: customer {customer_id!r} is not in the catalog"
        raise CatalogError(msg)
    entity = catalog.entities.get(customer.invoicing_entity)
    if entity is None:
        msg = f"cannot close {invoice_id}: invoicing entity {customer.invoicing_entity!r} missing"
        raise CatalogError(msg)

    invoice = loaded.get(invoice_id) or Invoice.new(invoice_id)
    if invoice.is_draft:
        n = ledger_of(customer_id)
        sums = ledgers[n].drafts.get(invoice_id)
        if sums is not None:  # charges in another currency leave the invoice in draft
            try:
                sums.check_currency(invoice_id, customer.currency)
            except CurrencyMismatchError as exc:
                ids = await _charges_not_in(ports, invoice_id, customer.currency)
                raise CatalogError(f"{exc} (charges {', '.join(ids)})") from None
        groups = [] if sums is None else charge_groups(sums.lines)
        # a plan or a tax rate missing from the catalog leaves the invoice in draft (the
        # marker is dead-lettered and may be replayed)
        draft = catalog.assemble(customer=customer, entity=entity, period=period, groups=groups)
        return _ClosePlan(invoice, marker, customer, entity, draft, n, ledgers[n])
    if invoice.status is not InvoiceStatus.FINALIZING:  # issued before
        if invoice.document is not None and not await ports.invoices.is_published(invoice_id):
            # crashed after writing, before publishing
            await _publish(ports, invoice, marker)
        return _outcome_of(invoice, "already finalized")
    groups = invoice.charge_groups()  # frozen by a close that crashed half-way
    draft = catalog.assemble(customer=customer, entity=entity, period=period, groups=groups)
    return _ClosePlan(invoice, marker, customer, entity, draft, None, None)


async def _credit_balances(
    ports: InvoicingPorts, markers: Sequence[PeriodClosing], loaded: dict[str, Invoice]
) -> dict[str, dict[str, Decimal]]:
    """The credit balances of the customers whose invoices may take credit at this close
    (those not frozen before), read together: one look-up each, before the number claims, so
    that only the claims go one after another."""
    if ports.credits is None:
        return {}
    customers = set()
    for marker in markers:
        invoice = loaded.get(invoice_id_for(marker.data.customer_id, marker.data.period))
        if invoice is None or invoice.credit_applied is None:
            customers.add(marker.data.customer_id)
    ids = sorted(customers)
    found = await asyncio.gather(*(ports.credits.balances_of(c) for c in ids))
    return dict(zip(ids, found, strict=True))


async def _freeze_and_number(
    ports: InvoicingPorts, plan: _ClosePlan, balances: dict[str, dict[str, Decimal]]
) -> tuple[Closing, bool]:
    """Freeze the planned invoice (its sums out of its ledger, its issue date fixed, the
    customer credit it takes decided from ``balances``), give it its number and start its
    rendering (the caller writes the invoice and the ledger); whether it took customer credit
    now."""
    invoice = plan.invoice
    if plan.ledger is not None:
        invoice.start_finalizing(plan.marker.data.issue_date, plan.ledger.take(invoice.invoice_id))
    assert invoice.issue_date is not None
    issue_date = invoice.issue_date
    # the customer's credit balance is taken once, when the invoice is frozen (a resumed
    # close keeps what was taken then)
    took_credit = await take_customer_credit(
        ports, invoice, plan.draft, balances.get(invoice.customer_id)
    )
    if invoice.seq is None:  # kept on the invoice: a close resumed after a crash finds it
        invoice.seq = await ports.invoices.claim_number(
            entity=plan.entity.id, year=issue_date.year, invoice_id=invoice.invoice_id
        )
    number = format_invoice_number(plan.entity.number_prefix, issue_date.year, invoice.seq)
    document = plan.draft.model_copy(
        update={
            "number": number,
            "status": InvoiceStatus.FINALIZED,
            "issue_date": issue_date,
            "due_date": due_date_for(issue_date, plan.customer.payment_terms_days),
            # a negative invoice owes nothing: what it owes the customer is customer credit
            "outstanding": max(plan.draft.total, Decimal(0)),
        }
    )
    document = with_credit_applied(document, invoice.credit_applied or Decimal(0))
    # rendering starts at once, in the process pool, while the next markers are frozen
    pdf = asyncio.create_task(ports.renderer.render(document))
    return Closing(invoice, document, plan.marker, pdf), took_credit


async def take_customer_credit(
    ports: InvoicingPorts,
    invoice: Invoice,
    draft: InvoiceDocument,
    balance: dict[str, Decimal] | None = None,
) -> bool:
    """Decide, once, how much of the customer's credit balance in the invoice's currency the
    frozen invoice takes (``domain/credit.py``; ``balance`` if read already); whether it was
    decided now."""
    if ports.credits is None or invoice.credit_applied is not None:
        return False
    if balance is None:
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
    async for line in ports.invoices.charges_of(invoice_id):
        if line.currency != currency:
            if len(ids) == at_most:
                return [*ids, "..."]
            ids.append(line.charge_id)
    return ids


def cancel_renderings(closings: Iterable[Closing]) -> None:
    """Stop the renderings still under way (after a failure: the batch comes again)."""
    for closing in closings:
        closing.pdf.cancel()


async def finish_close(ports: InvoicingPorts, closing: Closing) -> Outcome:
    """Store, issue and announce a frozen invoice once its rendering (started when it was
    frozen) comes back: three writes, each one document by ``_id``, and one event. Frozen
    invoices are independent of each other from here on (their numbers are claimed), so the
    caller finishes them concurrently, each as its rendering comes back."""
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
            credit_applied=document.credit_applied,
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
