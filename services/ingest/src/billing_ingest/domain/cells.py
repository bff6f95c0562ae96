"""Reading one cell of a bill row: what every format's mapper shares (pure).

A problem raises :class:`RowRejected`, which carries the column and the reason; the mappers turn
it into a :class:`RowProblem` for the rejected-usage topic and the bill registry.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from billing_schemas.events import LineType, SourceRef, UsageRecord
from billing_schemas.money import AmountOutOfBoundsError, MoneyError, minor_units, parse_decimal

Row = dict[str, str | None]


@dataclass(frozen=True)
class RowProblem:
    """Why a row was rejected: the column at fault (if one) and the reason."""

    column: str | None
    reason: str


class MapsRows(ABC):
    """A format whose columns are data: ``to_record`` (the row-mapper signature every format
    shares) turns a :class:`RowRejected` raised by ``_record`` into the row's
    :class:`RowProblem`."""

    def to_record(
        self,
        row: Row,
        *,
        bill_id: str,
        file_name: str,
        row_number: int,
        digest: str,
        occurrence: int,
    ) -> UsageRecord | RowProblem:
        """Map one row, or say which column is wrong and why."""
        try:
            return self._record(
                row, SourceRef(file=file_name, row=row_number), bill_id, digest, occurrence
            )
        except RowRejected as exc:
            return exc.problem

    @abstractmethod
    def _record(
        self, row: Row, source: SourceRef, bill_id: str, digest: str, occurrence: int
    ) -> UsageRecord:
        """The row's record; raises :class:`RowRejected` naming the column at fault."""


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
    except AmountOutOfBoundsError as exc:  # a number, but beyond the bounds of money
        raise RowRejected(column, f"{column}: {exc}") from None
    except MoneyError:
        shown = value if len(value) <= 40 else f"{value[:32]}..."
        raise RowRejected(column, f"{column} {shown!r} is not a decimal number") from None


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


def row_content(row: Row) -> str:
    """The text a line's identity is digested from: the cells in column-name order (so column
    order does not matter), empty cells as "", separated by US (0x1F)."""
    return "\x1f".join(row[column] or "" for column in sorted(row))


def content_digest(columns: str, content: str) -> str:
    """Digest of a row's :func:`row_content` under its file's sorted column names (``columns``,
    see :func:`columns_key`): the same cells under other column names are another line."""
    return hashlib.sha256(f"{columns}\x1e{content}".encode()).hexdigest()


def content_hash(columns: str) -> hashlib._Hash:
    """A hash started with ``columns``: ``copy()`` it and ``update()`` it with a row's content
    to get :func:`content_digest` without building the joined string."""
    return hashlib.sha256(f"{columns}\x1e".encode())


def columns_key(header: list[str] | Row) -> str:
    """The sorted column names, as :func:`content_digest` takes them."""
    return "\x1f".join(sorted(header))


def record_id_for(
    provider: str, billing_account: str, period: str, digest: str, occurrence: int
) -> str:
    """The deterministic usage record id: the line's identity is its content and, for rows
    repeated word for word in one bill, which repetition it is.

    ``digest`` (:func:`content_digest`) covers every cell, provider, billing account and period
    among them, so the first occurrence's id is the digest itself; the others are told apart.
    """
    del provider, billing_account, period  # in the digest already; kept for the mappers' sake
    if occurrence == 1:
        return digest[:32]
    return hashlib.sha256(f"{digest}\x1f{occurrence}".encode()).hexdigest()[:32]


USAGE_LINE_TYPES = frozenset({LineType.ON_DEMAND, LineType.COMMITMENT_COVERED})


def sign_problem(
    record: UsageRecord, quantity_columns: dict[str, str] | None = None
) -> RowProblem | None:
    """A usage line (on demand or commitment-covered) whose quantity is negative while its
    billed cost is positive has a quantity of the wrong sign: refused. (A negative quantity
    with a negative cost is a provider's own reversal, as Azure writes them: kept.)
    ``quantity_columns`` names the bill's column of each record field, for the message."""
    if (
        record.line_type not in USAGE_LINE_TYPES
        or record.billed_cost <= 0
        or record.charge_class == "correction"
    ):
        return None
    for field in ("pricing_quantity", "consumed_quantity"):
        value: Decimal | None = getattr(record, field)
        if value is not None and value < 0:
            column = (quantity_columns or {}).get(field, field)
            return RowProblem(
                column,
                f"{column} {value} is negative but the billed cost {record.billed_cost} is "
                f"positive on a {record.line_type.value} line",
            )
    return None


class SeenDigests:
    """The 64-bit digest prefixes of the rows read so far, in ~8 bytes each.

    A Python ``set`` of a million ints takes ~78 MB; here the prefixes sit in sorted
    ``array('Q')`` buckets chosen by their top 16 bits (~15 per bucket at a million rows), so a
    million rows take ~14 MB and a lookup is a bisect in a short array.
    """

    def __init__(self) -> None:
        self._buckets: dict[int, array[int]] = {}

    def add(self, prefix: int) -> bool:
        """Add ``prefix``; True when it was not there yet."""
        bucket = self._buckets.get(prefix >> 48)
        if bucket is None:
            self._buckets[prefix >> 48] = array("Q", (prefix,))
            return True
        at = bisect_left(bucket, prefix)
        if at < len(bucket) and bucket[at] == prefix:
            return False
        bucket.insert(at, prefix)
        return True
