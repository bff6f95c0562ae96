"""Use case: close a billing period ("Generate invoices").

For each customer with charges in the period: freeze the draft, take exactly the charges it has
at that moment, assemble the invoice, give it the next number of its invoicing entity's series,
render and store the PDF, write the finalized invoice and publish ``InvoiceFinalized``. Every
step is idempotent, so running the close again (after a crash, or by mistake) finishes what was
left and issues nothing twice. A dry run computes the same invoices and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.domain.invoice import (
    Invoice,
    InvoiceStatus,
    assemble_invoice,
    due_date_for,
    format_invoice_number,
    invoice_id_for,
)
from billing_schemas.events import FinalizedInvoice, InvoiceFinalized, today_utc

SOURCE = "billing-invoicing"


class PdfRendering(Protocol):
    """Port: turn an invoice into PDF bytes (off the event loop)."""

    async def render(self, invoice: Invoice) -> bytes:
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
    """Port: publish InvoiceFinalized and wait for the broker's ack."""

    async def invoice_finalized(self, event: InvoiceFinalized) -> None:
        """Publish the event keyed by customer."""
        ...


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


async def generate_invoices(
    ports: InvoicingPorts,
    *,
    period: str,
    customer_id: str | None = None,
    dry_run: bool = False,
    issue_date: date | None = None,
    correlation_id: str | None = None,
) -> list[Outcome]:
    """Close ``period`` for one customer or all; see the module docstring."""
    customers = (
        [customer_id] if customer_id else await ports.invoices.customers_with_charges(period)
    )
    # one customer after the other: the number series is per entity, and PDFs render in a pool
    return [
        await _close_one(
            ports,
            invoice_id_for(cid, period),
            dry_run=dry_run,
            issue_date=issue_date or today_utc(),
            correlation_id=correlation_id or f"close:{period}",
        )
        for cid in customers
    ]


async def _close_one(
    ports: InvoicingPorts,
    invoice_id: str,
    *,
    dry_run: bool,
    issue_date: date,
    correlation_id: str,
) -> Outcome:
    customer_id, period = invoice_id.rsplit(":", 1)
    customer = await ports.catalog.customer(customer_id)
    if customer is None:
        return Outcome(
            invoice_id, customer_id, None, Decimal(0), "", "draft", "skipped: no such customer"
        )
    entity = await ports.catalog.invoicing_entity(customer.invoicing_entity)
    if entity is None:
        why = f"skipped: invoicing entity {customer.invoicing_entity!r} missing"
        return Outcome(invoice_id, customer_id, None, Decimal(0), customer.currency, "draft", why)

    existing = await ports.invoices.invoice(invoice_id)
    if existing is not None and existing["status"] not in (InvoiceStatus.DRAFT, "finalizing"):
        if existing.get("published_at") is None:  # crashed after writing, before publishing
            await _publish(
                ports, Invoice.model_validate(existing["document"]), existing, correlation_id
            )
        document = Invoice.model_validate(existing["document"])
        return Outcome(
            invoice_id,
            customer_id,
            document.number,
            document.total,
            document.currency,
            existing["status"],
            "already finalized",
        )

    if dry_run:
        groups = await ports.invoices.charge_groups(invoice_id, stamped_only=False)
        draft = assemble_invoice(customer=customer, entity=entity, period=period, groups=groups)
        return Outcome(
            invoice_id, customer_id, None, draft.total, draft.currency, "draft", "would finalize"
        )

    doc = await ports.invoices.start_finalizing(invoice_id, issue_date)
    assert doc is not None
    fixed_issue_date = date.fromisoformat(doc["issue_date"])
    await ports.invoices.stamp_charges(invoice_id)
    groups = await ports.invoices.charge_groups(invoice_id, stamped_only=True)
    draft = assemble_invoice(customer=customer, entity=entity, period=period, groups=groups)
    seq = await ports.invoices.claim_number(
        entity=entity.id, year=fixed_issue_date.year, invoice_id=invoice_id
    )
    invoice = draft.model_copy(
        update={
            "number": format_invoice_number(entity.number_prefix, fixed_issue_date.year, seq),
            "status": InvoiceStatus.FINALIZED,
            "issue_date": fixed_issue_date,
            "due_date": due_date_for(fixed_issue_date, customer.payment_terms_days),
        }
    )
    pdf = await ports.renderer.render(invoice)
    stored = await ports.pdfs.save(invoice_id=invoice_id, number=invoice.number or "", pdf=pdf)
    await ports.invoices.finalize(invoice, seq=seq, pdf_file_id=stored.file_id, sha=stored.sha256)
    finalized = await ports.invoices.invoice(invoice_id)
    assert finalized is not None
    await _publish(ports, invoice, finalized, correlation_id)
    return Outcome(
        invoice_id,
        customer_id,
        invoice.number,
        invoice.total,
        invoice.currency,
        InvoiceStatus.FINALIZED.value,
        "finalized",
    )


async def _publish(
    ports: InvoicingPorts, invoice: Invoice, doc: dict[str, object], correlation_id: str
) -> None:
    assert invoice.number is not None
    assert invoice.issue_date is not None
    assert invoice.due_date is not None
    event = InvoiceFinalized.create(
        FinalizedInvoice(
            invoice_id=invoice.invoice_id,
            invoice_number=invoice.number,
            customer_id=invoice.customer_id,
            customer_name=invoice.buyer.name,
            invoicing_entity_id=invoice.invoicing_entity_id,
            period=invoice.period,
            issue_date=invoice.issue_date,
            due_date=invoice.due_date,
            currency=invoice.currency,
            subtotal=invoice.subtotal,
            tax=invoice.tax,
            total=invoice.total,
            outstanding=invoice.outstanding,
            line_count=len(invoice.lines),
            pdf_file_id=str(doc["pdf_file_id"]),
            pdf_sha256=str(doc["pdf_sha256"]),
        ),
        source=SOURCE,
        correlation_id=correlation_id,
        event_id=f"invoice-finalized:{invoice.invoice_id}",
    )
    await ports.events.invoice_finalized(event)
    await ports.invoices.mark_published(invoice.invoice_id)
