"""Stored documents read into the typed records the use cases take (``domain/stored.py``):
the one place that knows the field names of a stored charge, invoice row and credit note as
queries and exports read them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from billing_invoicing.domain.invoice import ChargeKind
from billing_invoicing.domain.model import DraftLine
from billing_invoicing.domain.stored import ChargeLine, CreditNoteRow, InvoiceRow
from billing_schemas.money import from_fixed_units


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _units(value: Any) -> int | None:
    return None if value is None else int(value)


def charge_line_of(doc: Mapping[str, Any]) -> ChargeLine:
    """A stored charge (``invoice_repo.charge_document``) as the use cases read it."""
    return ChargeLine(
        charge_id=str(doc["_id"]),
        period=str(doc["period"]),
        late=bool(doc.get("late")),
        provider=str(doc["provider"]),
        sub_account_id=str(doc["sub_account_id"]),
        sub_account_name=doc.get("sub_account_name"),
        service_name=str(doc["service_name"]),
        service_category=doc.get("service_category"),
        sku_id=doc.get("sku_id"),
        sku_price_id=doc.get("sku_price_id"),
        description=doc.get("description"),
        region=doc.get("region"),
        charge_category=str(doc["charge_category"]),
        line_type=_text(doc.get("line_type")),
        charge_period_start=doc.get("charge_period_start"),
        charge_period_end=doc.get("charge_period_end"),
        quantity=doc.get("quantity"),
        unit=doc.get("unit"),
        cost_units=_units(doc.get("cost_units")),
        cost_currency=str(doc.get("cost_currency")),
        fx_rate=doc.get("fx_rate"),
        basis=doc.get("basis"),
        price_units=int(doc["price_units"]),
        list_price_units=_units(doc.get("list_price_units")),
        margin_units=_units(doc.get("margin_units")),
        savings_removed_units=_units(doc.get("savings_removed_units", 0)),
        currency=str(doc["currency"]),
        rule=str(doc.get("rule")),
        price_list_id=str(doc.get("price_list_id")),
        price_list_version=str(doc.get("price_list_version")),
    )


def invoice_row_of(doc: Mapping[str, Any]) -> InvoiceRow:
    """A stored invoice row (``invoice_repo``) as queries and exports read it."""
    issued = doc.get("issue_date")
    number = doc.get("number")
    return InvoiceRow(
        invoice_id=str(doc["_id"]),
        customer_id=str(doc.get("customer_id")),
        period=_text(doc.get("period")),
        status=_text(doc.get("status")),
        number=str(number) if number else None,
        issue_date=date.fromisoformat(str(issued)) if issued else None,
        total_units=_units(doc.get("total_units")),
        currency=_text(doc.get("currency")),
        document_currency=_text((doc.get("document") or {}).get("currency")),
        published=bool(doc.get("published_at")),
        pdf_file_id=_text(doc.get("pdf_file_id")),
        document=doc.get("document"),
        outstanding_units=_units(doc.get("outstanding_units")),
        credited_units=int(doc.get("credited_units") or 0),
        due_date=date.fromisoformat(str(due)) if (due := doc.get("due_date")) else None,
        draft_lines=tuple(draft_line_of(line) for line in doc.get("draft_lines") or ()),
    )


def credit_note_row_of(doc: Mapping[str, Any]) -> CreditNoteRow:
    """A stored credit note (``settlement_repo.credit_note_document``)."""
    return CreditNoteRow(
        number=str(doc["number"]),
        invoice_number=str(doc["invoice_number"]),
        issue_date=date.fromisoformat(str(doc["issue_date"])),
        amount_units=int(doc["amount_units"]),
        tax_units=int(doc["tax_units"]),
        net_units=int(doc["net_units"]),
        reason=str(doc["reason"]),
        void=bool(doc.get("void")),
    )


def line_amount(line: Mapping[str, Any], name: str) -> Decimal:
    """``cost``, ``price`` or ``savings_removed`` of a stored draft line: its exact string
    (lines written before the strings were kept have nanos only)."""
    if line.get(name) is not None:
        return Decimal(line[name])
    return from_fixed_units(int(line.get(f"{name}_units") or 0))


def draft_line_of(doc: Mapping[str, Any]) -> DraftLine:
    """A stored draft line (the exact sums of its charges)."""

    def amount(name: str) -> Decimal:
        return line_amount(doc, name)

    return DraftLine(
        period=str(doc["period"]),
        provider=str(doc["provider"]),
        service_name=str(doc["service_name"]),
        # lines stored before charges were told apart by kind held everything as usage
        kind=str(doc.get("kind") or ChargeKind.USAGE.value),
        charge_count=int(doc.get("charge_count", 0)),
        cost=amount("cost"),
        price=amount("price"),
        savings_removed=amount("savings_removed"),
    )
