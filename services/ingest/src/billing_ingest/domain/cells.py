"""Reading one cell of a bill row: what every format's mapper shares (pure).

A problem raises :class:`RowRejected`, which carries the column and the reason; the mappers turn
it into a :class:`RowProblem` for the rejected-usage topic and the bill registry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from billing_schemas.money import MoneyError, minor_units, parse_decimal

Row = dict[str, str | None]


@dataclass(frozen=True)
class RowProblem:
    """Why a row was rejected: the column at fault (if one) and the reason."""

    column: str | None
    reason: str


class RowRejected(Exception):  # noqa: N818 - a row's verdict, caught by the mappers
    """Raised by the cell readers; names the column and the reason."""

    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.problem = RowProblem(column, reason)


def required(row: Row, column: str) -> str:
    """A cell that must have a value."""
    value = row.get(column)
    if value is None or not value.strip():
        raise RowRejected(column, f"{column} is empty; a value is required")
    return value.strip()


def optional(row: Row, column: str) -> str | None:
    """A cell that may be empty (None then)."""
    value = row.get(column)
    if value is None:
        return None
    value = value.strip()
    return value or None


def amount(row: Row, column: str, *, is_required: bool) -> Decimal | None:
    """A decimal cell (money or quantity), never through a float."""
    value = required(row, column) if is_required else optional(row, column)
    if value is None:
        return None
    try:
        return parse_decimal(value)
    except MoneyError:
        raise RowRejected(column, f"{column} {value!r} is not a decimal number") from None


def not_negative(value: Decimal | None, column: str, where: str = "") -> None:
    """Reject a negative quantity, naming its column (``where``: e.g. " on a Usage line")."""
    if value is not None and value < 0:
        raise RowRejected(column, f"{column} {value} is negative{where}")


def timestamp(row: Row, column: str) -> datetime:
    """An ISO 8601 date-time cell; without a zone it is UTC (as the providers' exports are).

    BigQuery writes ``2024-09-01 07:00:00 UTC``: a trailing `` UTC`` is read as UTC too.
    """
    value = required(row, column)
    try:
        parsed = datetime.fromisoformat(value.removesuffix(" UTC").replace("Z", "+00:00"))
    except ValueError:
        raise RowRejected(column, f"{column} {value!r} is not a date-time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def json_cell(row: Row, column: str) -> object:
    """A cell holding JSON text (None when empty); numbers are read as Decimals, never floats."""
    raw = optional(row, column)
    if raw is None:
        return None
    try:
        return json.loads(raw, parse_float=Decimal, parse_int=Decimal)
    except json.JSONDecodeError:
        raise RowRejected(column, f"{column} is not valid JSON") from None


def currency(row: Row, column: str) -> str:
    """An ISO 4217 currency code cell."""
    code = required(row, column).upper()
    try:
        minor_units(code)
    except MoneyError:
        raise RowRejected(column, f"{code!r} is not an ISO 4217 currency code") from None
    return code


def period_of(moment: datetime) -> str:
    """The ``YYYY-MM`` billing period a billing-period start falls in."""
    return f"{moment.year:04d}-{moment.month:02d}"


def row_digest(row: Row) -> str:
    """Digest of every cell of the row, with its column name (column order does not matter)."""
    text = "\x1e".join(f"{column}\x1f{row[column] or ''}" for column in sorted(row))
    return hashlib.sha256(text.encode()).hexdigest()


def record_id_for(
    provider: str, billing_account: str, period: str, digest: str, occurrence: int
) -> str:
    """The deterministic usage record id: the line's identity is its content and, for rows
    repeated word for word in one bill, which repetition it is."""
    key = f"{provider}\x1f{billing_account}\x1f{period}\x1f{digest}\x1f{occurrence}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]
