"""The detailed CSV behind an invoice: every rated usage line, its cost, price and rule.

The CSV reads back to the invoice: the ``price`` column of the invoice's own period sums to its
usage lines exactly (before rounding), and late lines carry the period they belong to.

Text that comes from providers (descriptions, SKUs, regions...) is written so that a
spreadsheet shows it and never runs it: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return is prefixed with ``'`` (OWASP's "CSV injection" advice). Amounts and
quantities are our own decimal strings and are written as they are.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from typing import TextIO

from billing_invoicing.domain.stored import ChargeLine
from billing_invoicing.domain.units import from_units

COLUMNS = [
    "charge_id",
    "usage_period",
    "late",
    "provider",
    "account",
    "service",
    "sku",
    "description",
    "region",
    "charge_category",
    "line_type",
    "charge_period_start",
    "quantity",
    "unit",
    "cost",
    "cost_currency",
    "fx_rate",
    "basis",
    "price",
    "currency",
    "margin",
    "savings_removed",
    "rule",
    "price_list",
    "price_list_version",
]


OPERATOR_ONLY = ("cost", "cost_currency", "fx_rate", "basis", "margin", "rule")
"""Columns a customer's copy leaves out: what the usage cost us and how it was marked up."""

CUSTOMER_COLUMNS = [c for c in COLUMNS if c not in OPERATOR_ONLY]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (or hide what follows)."""


def neutralized(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs: prefixed with ``'`` when it starts like a
    formula (:data:`FORMULA_STARTS`)."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _amount(units: int | None, currency: str) -> str:
    return "" if units is None else format(from_units(int(units), currency), "f")


def csv_row(line: ChargeLine) -> list[str]:
    """One stored charge as a CSV row (amounts as exact decimal strings)."""
    start = line.charge_period_start
    currency = line.currency
    text = neutralized
    return [
        text(line.charge_id),
        line.period,
        "yes" if line.late else "no",
        text(line.provider),
        text(line.sub_account_id),
        text(line.service_name),
        text(line.sku_id or ""),
        text(line.description or ""),
        text(line.region or ""),
        line.charge_category,
        str(line.line_type),
        start.isoformat() if start is not None else "",
        line.quantity or "",
        text(line.unit or ""),
        _amount(line.cost_units, line.cost_currency),
        line.cost_currency,
        line.fx_rate or "",
        text(line.basis or ""),
        _amount(line.price_units, currency),
        currency,
        _amount(line.margin_units, currency),
        _amount(line.savings_removed_units, currency),
        text(line.rule),
        text(line.price_list_id),
        line.price_list_version,
    ]


async def write_usage_csv(
    charges: AsyncIterator[ChargeLine], out: TextIO, columns: list[str] = COLUMNS
) -> int:
    """Write the header and one row per charge (only ``columns``, in the order of
    :data:`COLUMNS`); return the number of rows."""
    keep = [i for i, name in enumerate(COLUMNS) if name in columns]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([COLUMNS[i] for i in keep])
    count = 0
    async for line in charges:
        row = csv_row(line)
        writer.writerow([row[i] for i in keep])
        count += 1
    return count
