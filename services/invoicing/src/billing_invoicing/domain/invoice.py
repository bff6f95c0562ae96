"""Invoice assembly: pure rules, no I/O.

An invoice gathers a customer's rated charges of one billing period into lines (one per provider
and service). Amounts stay exact until the invoice is assembled; then the subtotal is rounded
once to the currency's minor units and the lines are rounded so that they add up to it
(largest-remainder allocation, see ``billing_schemas.money.allocate_rounded``).
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from billing_schemas.catalog import Customer, InvoicingEntity, PaymentMethod
from billing_schemas.money import allocate_rounded, round_to_minor


class InvoiceStatus(StrEnum):
    """Lifecycle: draft -> finalized -> paid (partially paid, overdue, void come later)."""

    DRAFT = "draft"
    FINALIZED = "finalized"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    VOID = "void"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ChargeGroup(_Model):
    """The exact sum of one group of rated charges (what the database aggregation returns)."""

    provider: str
    service_name: str
    charge_count: int = Field(ge=0)
    cost: Decimal
    price: Decimal


class InvoiceLine(_Model):
    """One line on the invoice document."""

    description: str
    provider: str
    service_name: str
    charge_count: int
    cost: Decimal = Field(description="Exact provider cost behind the line (not printed).")
    amount_exact: Decimal
    amount: Decimal = Field(description="Rounded to minor units; lines add up to the subtotal.")


class Party(_Model):
    """A seller or buyer block on the invoice."""

    name: str
    address_lines: list[str]
    country: str
    vat_id: str | None = None
    email: str | None = None


class Invoice(_Model):
    """An assembled invoice, ready to be stored and rendered."""

    invoice_id: str
    customer_id: str
    invoicing_entity_id: str
    period: str
    currency: str
    language: str
    seller: Party
    buyer: Party
    lines: list[InvoiceLine]
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    outstanding: Decimal
    payment_methods: list[PaymentMethod]
    number: str | None = None
    status: InvoiceStatus = InvoiceStatus.DRAFT
    issue_date: date | None = None
    due_date: date | None = None


def invoice_id_for(customer_id: str, period: str) -> str:
    """An invoice's id is its customer and period: one invoice per customer and period."""
    return f"{customer_id}:{period}"


def period_bounds(period: str) -> tuple[date, date]:
    """First and last day of a ``YYYY-MM`` period."""
    year, month = (int(p) for p in period.split("-"))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def due_date_for(issue_date: date, payment_terms_days: int) -> date:
    """The due date is the issue date plus the customer's payment terms in days."""
    return issue_date + timedelta(days=payment_terms_days)


def format_invoice_number(prefix: str, year: int, sequence: int) -> str:
    """``<prefix><year>-<sequence, 6 digits>``, e.g. ``ACME-2024-000042``."""
    return f"{prefix}{year}-{sequence:06d}"


def assemble_invoice(
    *,
    customer: Customer,
    entity: InvoicingEntity,
    period: str,
    groups: list[ChargeGroup],
) -> Invoice:
    """Assemble a draft invoice from a customer's charge groups of one period.

    The subtotal is the exact sum of the groups, rounded once (half-up) to the currency's minor
    units; the printed lines are rounded to add up to it. Taxes are not applied yet (0).
    """
    currency = customer.currency
    ordered = sorted(groups, key=lambda g: (g.provider, g.service_name))
    rounded = allocate_rounded([g.price for g in ordered], currency)
    lines = [
        InvoiceLine(
            description=f"{g.service_name} ({g.provider})",
            provider=g.provider,
            service_name=g.service_name,
            charge_count=g.charge_count,
            cost=g.cost,
            amount_exact=g.price,
            amount=amount,
        )
        for g, amount in zip(ordered, rounded, strict=True)
    ]
    subtotal = round_to_minor(sum((g.price for g in ordered), Decimal(0)), currency)
    tax = round_to_minor(Decimal(0), currency)
    total = subtotal + tax
    return Invoice(
        invoice_id=invoice_id_for(customer.id, period),
        customer_id=customer.id,
        invoicing_entity_id=entity.id,
        period=period,
        currency=currency,
        language=customer.language,
        seller=Party(
            name=entity.name,
            address_lines=entity.address.lines,
            country=entity.address.country,
            vat_id=entity.vat_id,
            email=str(entity.email),
        ),
        buyer=Party(
            name=customer.name,
            address_lines=customer.address.lines,
            country=customer.address.country,
            vat_id=customer.vat_id,
        ),
        lines=lines,
        subtotal=subtotal,
        tax=tax,
        total=total,
        outstanding=total,
        payment_methods=entity.payment_methods,
    )
