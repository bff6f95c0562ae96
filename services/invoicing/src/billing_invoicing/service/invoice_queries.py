"""Use cases of the customer panel and the operator's API: find invoices, read one, its PDF and
its CSV, the dues, record a payment, the margin report.

Every use case takes the caller's :class:`~billing_invoicing.domain.access.Scope` and refuses
(``ForbiddenError``) what it does not cover, so the HTTP routes stay thin and the rule is tested
once here. Amounts are exact ``Decimal``; what an invoice owes is in the currency's minor units.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any

from billing_invoicing.adapters.invoice_keys import KeyFilter
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.settlement_repo import amount_of
from billing_invoicing.adapters.stored_rows import invoice_row_of
from billing_invoicing.domain.access import Scope, require_customer, require_operator
from billing_invoicing.domain.invoice import InvoiceStatus
from billing_invoicing.domain.stored import InvoiceRow
from billing_invoicing.domain.units import from_units
from billing_invoicing.ports import PdfReading
from billing_invoicing.service.settle_invoices import (
    Dues,
    InvoiceNotFoundError,
    PaymentOutcome,
    SettlementPorts,
    dues,
    record_payment,
)
from billing_invoicing.service.usage_csv import COLUMNS, CUSTOMER_COLUMNS, write_usage_csv
from billing_schemas.money import minor_units

MAX_PAGE = 500
MAX_OFFSET = 1_000_000
"""The furthest a list may be paged (a larger offset is refused: 422)."""


@dataclass
class QueryPorts:
    """What the panel's use cases need."""

    invoices: MongoInvoiceRepository
    settlement: SettlementPorts
    pdfs: PdfReading


@dataclass(frozen=True)
class InvoiceFilter:
    """The invoice list's filters (None: any). Totals compare the finalized total, tax
    included, in the invoice's own currency; a total filter leaves drafts out."""

    customer_id: str | None = None
    period: str | None = None
    status: InvoiceStatus | None = None
    min_total: Decimal | None = None
    max_total: Decimal | None = None
    adjusted: bool | None = None
    """True: only invoices carrying netting of included infrastructure or credit notes (the
    console's "discount" filter); False: only those without."""


def is_adjusted(row: InvoiceRow) -> bool:
    """What makes an invoice "adjusted": included infrastructure netted, or something
    credited."""
    document = row.document or {}
    return isinstance(document.get("netting"), dict) or row.credited_units > 0


def matches(row: InvoiceRow, wanted: InvoiceFilter) -> bool:
    """Whether a stored invoice passes the list's filters (a total filter leaves drafts out:
    they have no total yet)."""
    if wanted.customer_id is not None and row.customer_id != wanted.customer_id:
        return False
    if wanted.period is not None and row.period != wanted.period:
        return False
    if wanted.status is not None and row.status != wanted.status.value:
        return False
    if wanted.min_total is not None or wanted.max_total is not None:
        if row.total_units is None:
            return False
        total = from_units(row.total_units, row.currency)
        if wanted.min_total is not None and total < wanted.min_total:
            return False
        if wanted.max_total is not None and total > wanted.max_total:
            return False
    return wanted.adjusted is None or is_adjusted(row) == wanted.adjusted


def _matching(doc: dict[str, Any], wanted: InvoiceFilter) -> bool:
    return matches(invoice_row_of(doc), wanted)


@dataclass(frozen=True)
class InvoiceSummary:
    """One row of the invoice list (the panel's columns and a little more)."""

    invoice_id: str
    number: str | None
    customer_id: str
    period: str
    status: str
    currency: str | None
    total: Decimal | None
    outstanding: Decimal | None
    draft_total: Decimal | None
    issue_date: str | None
    due_date: str | None
    has_pdf: bool


@dataclass(frozen=True)
class InvoicePage:
    """A page of the list; ``next_offset`` None on the last page."""

    items: list[InvoiceSummary]
    offset: int
    limit: int
    next_offset: int | None


def summary_of(row: InvoiceRow) -> InvoiceSummary:
    """A stored invoice as a row of the list."""
    currency = row.currency or ""
    finalized = row.total_units is not None and bool(currency)
    draft = sum((line.price for line in row.draft_lines), Decimal(0))
    return InvoiceSummary(
        invoice_id=row.invoice_id,
        number=row.number,
        customer_id=row.customer_id,
        period=str(row.period),
        status=str(row.status),
        currency=currency or None,
        total=amount_of(row.total_units, currency) if finalized else None,
        outstanding=amount_of(row.outstanding_units, currency) if finalized else None,
        draft_total=None if finalized else exact_amount(draft, currency or None),
        issue_date=row.issue_date.isoformat() if row.issue_date else None,
        due_date=row.due_date.isoformat() if row.due_date else None,
        has_pdf=bool(row.pdf_file_id),
    )


async def find_invoices(
    ports: QueryPorts, scope: Scope, wanted: InvoiceFilter, *, offset: int, limit: int
) -> InvoicePage:
    """The invoices the scope may see that match the filters, a page at a time."""
    customer_id = wanted.customer_id
    if customer_id is not None:
        require_customer(scope, customer_id)
    elif scope.customer_id is not None:
        customer_id = scope.customer_id
    wanted = replace(wanted, customer_id=customer_id)
    narrowed = KeyFilter(customer_id, wanted.period, wanted.min_total, wanted.max_total)
    # the keys narrow customer and period exactly; anything else is checked on the invoice
    exact = narrowed == KeyFilter(customer_id, wanted.period) and wanted.status is None
    exact = exact and wanted.adjusted is None
    limit = max(1, min(limit, MAX_PAGE))
    docs = await ports.invoices.find_invoices(
        narrowed,
        None if exact else partial(_matching, wanted=wanted),
        offset=offset,
        limit=limit + 1,
        with_document=wanted.adjusted is not None,
    )
    more = len(docs) > limit
    rows = [invoice_row_of(d) for d in docs[:limit]]
    return InvoicePage(
        [summary_of(r) for r in rows], offset, limit, offset + limit if more else None
    )


async def invoice_document(ports: QueryPorts, scope: Scope, number: str) -> InvoiceRow:
    """The stored invoice (by number, or by id ``customer:period`` for a draft)."""
    doc = await ports.invoices.document_by_number(number)
    if doc is None or not scope.may_see(invoice_row_of(doc).customer_id):
        # another customer's invoice is answered like a number never issued
        msg = f"no invoice {number!r}"
        raise InvoiceNotFoundError(msg)
    [doc] = await ports.invoices.with_draft_lines([doc])  # a draft's lines so far
    return invoice_row_of(doc)


PRIVATE_LINE_FIELDS = ("cost",)
"""What a line of an issued invoice keeps for the operator only: the provider's cost."""


@dataclass(frozen=True)
class InvoiceDetail:
    """One invoice: its row and either the issued document or the draft's lines so far."""

    summary: InvoiceSummary
    document: dict[str, Any] | None
    draft_lines: list[dict[str, Any]] | None


async def invoice_detail(ports: QueryPorts, scope: Scope, number: str) -> InvoiceDetail:
    """The invoice as the scope may see it: a customer never sees the provider's cost (or a
    draft line's), only prices; operators see both."""
    row = await invoice_document(ports, scope, number)
    document = row.document
    if document is not None and not scope.is_operator:
        document = document | {
            "lines": [
                {k: v for k, v in line.items() if k not in PRIVATE_LINE_FIELDS}
                for line in document.get("lines", [])
            ]
        }
    draft_lines = None
    if document is None:
        currency = row.currency
        draft_lines = []
        for line in row.draft_lines:
            shown: dict[str, Any] = {
                "period": line.period,
                "provider": line.provider,
                "service_name": line.service_name,
                "charge_count": line.charge_count,
                "price": exact_amount(line.price, currency),
            }
            if scope.is_operator:
                shown["cost"] = exact_amount(line.cost, currency)
            draft_lines.append(shown)
    return InvoiceDetail(summary_of(row), document, draft_lines)


async def invoice_pdf(ports: QueryPorts, scope: Scope, number: str) -> tuple[str, bytes]:
    """The file name and bytes of a finalized invoice's PDF (as stored at finalization)."""
    row = await invoice_document(ports, scope, number)
    if not row.pdf_file_id:
        msg = f"invoice {number} has no PDF yet: it is {row.status}"
        raise InvoiceNotFoundError(msg)
    return f"{row.number}.pdf", await ports.pdfs.load(row.pdf_file_id)


async def invoice_csv(ports: QueryPorts, scope: Scope, number: str) -> tuple[str, str]:
    """The file name and text of the CSV of every rated usage line behind an invoice (for a
    customer token without the provider's cost, the margin and the pricing rule)."""
    row = await invoice_document(ports, scope, number)
    out = io.StringIO()
    columns = COLUMNS if scope.is_operator else CUSTOMER_COLUMNS
    await write_usage_csv(ports.invoices.charges_of(row.invoice_id), out, columns)
    name = row.number or row.invoice_id.replace(":", "-")
    return f"{name}.csv", out.getvalue()


async def invoice_dues(ports: QueryPorts, scope: Scope, number: str) -> Dues:
    """The dues breakdown and the ways to pay (what "Pay this invoice" shows)."""
    await invoice_document(ports, scope, number)
    return await dues(ports.settlement, number)


async def pay_invoice(
    ports: QueryPorts,
    scope: Scope,
    *,
    number: str,
    amount: Decimal,
    method: str,
    reference: str,
    paid_on: date,
    correlation_id: str,
) -> tuple[PaymentOutcome, Dues]:
    """Record a payment (operators only: money received is confirmed by the operator's bank
    or card processor, never by the customer), then the dues as they stand."""
    require_operator(scope, "recording a payment")
    outcome = await record_payment(
        ports.settlement,
        number=number,
        amount=amount,
        method=method,
        reference=reference,
        paid_on=paid_on,
        correlation_id=correlation_id,
    )
    return outcome, await dues(ports.settlement, number)


@dataclass(frozen=True)
class MarginRow:
    """Cost against price for one customer, provider and service in a period.

    ``cost`` is in the provider's currency; ``cost_converted`` in the invoice currency (price
    less margin, as rating converted it), so ``margin = price - cost_converted``.
    """

    customer_id: str
    provider: str
    service_name: str
    currency: str
    cost_currency: str
    charge_count: int
    cost: Decimal
    cost_converted: Decimal
    price: Decimal
    margin: Decimal
    margin_percent: Decimal | None


def exact(units: int, currency: str | None) -> Decimal:
    """Stored units as an exact amount, with at least the currency's minor digits (two when
    the currency is not known yet)."""
    return exact_amount(from_units(units, currency), currency)


def exact_amount(amount: Decimal, currency: str | None) -> Decimal:
    """An exact amount with at least the currency's minor digits (two when the currency is not
    known yet)."""
    amount = amount.normalize()
    digits = minor_units(currency) if currency else 2
    if -amount.as_tuple().exponent < digits:  # type: ignore[operator]
        amount = amount.quantize(Decimal(1).scaleb(-digits))
    return amount


async def margin_report(
    ports: QueryPorts, scope: Scope, *, period: str, customer_id: str | None = None
) -> list[MarginRow]:
    """Cost vs price per customer, provider and service for a usage period (late charges of
    the period included, wherever they were invoiced); exact sums, unrounded; operators
    only."""
    require_operator(scope, "the margin report")
    rows = []
    sums = await ports.invoices.margin_sums(period, customer_id)
    for (customer, provider, service, currency, cost_currency), row in sorted(sums.items()):
        price = exact(row.get("price_units", 0), currency)
        margin = exact(row.get("margin_units", 0), currency)
        percent = (
            None
            if price == 0
            else (margin * 100 / price).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        )
        rows.append(
            MarginRow(
                customer_id=customer,
                provider=provider,
                service_name=service,
                currency=currency,
                cost_currency=cost_currency,
                charge_count=row.get("count", 0),
                cost=exact(row.get("cost_units", 0), cost_currency),
                cost_converted=exact(
                    row.get("price_units", 0) - row.get("margin_units", 0), currency
                ),
                price=price,
                margin=margin,
                margin_percent=percent,
            )
        )
    return rows
