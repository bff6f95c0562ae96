"""What the use cases read of stored rows, as typed records: the adapters build them from the
documents (``adapters/stored_rows.py``), so no use case indexes a raw document and the shape of
storage is written down once.

Values keep the form they are stored in (money as integers of the currency's unit,
``domain/units.py``; quantities and exchange rates as decimal strings): the use cases convert
them as they did from the documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from billing_invoicing.domain.model import DraftLine


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """A rated charge as stored on an invoice (``invoicing_charges``)."""

    charge_id: str
    period: str
    late: bool
    provider: str
    sub_account_id: str
    sub_account_name: str | None
    service_name: str
    service_category: str | None
    sku_id: str | None
    sku_price_id: str | None
    description: str | None
    region: str | None
    charge_category: str
    line_type: str | None
    charge_period_start: datetime | None
    charge_period_end: datetime | None
    quantity: str | None
    unit: str | None
    cost_units: int | None
    cost_currency: str
    fx_rate: str | None
    basis: str | None
    price_units: int
    list_price_units: int | None
    margin_units: int | None
    savings_removed_units: int | None
    currency: str
    rule: str
    price_list_id: str
    price_list_version: str


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    """An invoice as stored (``invoicing_invoices``), as queries and exports read it: the
    invoice's own document (its JSON form; None while a draft has none) beside the fields the
    row keeps of it."""

    invoice_id: str
    customer_id: str
    period: str | None
    status: str | None
    number: str | None
    issue_date: date | None
    total_units: int | None
    currency: str | None
    document_currency: str | None
    published: bool
    pdf_file_id: str | None
    document: dict[str, Any] | None
    outstanding_units: int | None = None
    credited_units: int = 0
    due_date: date | None = None
    draft_lines: tuple[DraftLine, ...] = ()
    """A draft's lines so far (the exact sums of its charges); empty once issued."""


@dataclass(frozen=True, slots=True)
class CreditNoteRow:
    """A credit note as stored (``invoicing_credit_notes``)."""

    number: str
    invoice_number: str
    issue_date: date
    amount_units: int
    tax_units: int
    net_units: int
    reason: str
    void: bool
