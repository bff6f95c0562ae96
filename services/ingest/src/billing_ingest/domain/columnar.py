"""Column-at-a-time building blocks for the fast mapping path (pure: pyarrow compute, no I/O).

A format's row mapper (one dict per row, one Python call per cell) is the reference; it is what
turns a bad cell into a rejection with its column and reason. Doing that for a million rows costs
more than the rest of the load together, so a format may also offer a *columnar* mapper: it
checks whole columns with pyarrow compute, and for every row whose cells are all in the plain
form it writes the record's JSON directly. Any row with a cell in another form (an exponent, a
zone other than UTC, a control character, an unknown code...) is left to the row mapper, which
either accepts it, giving the same record, or rejects it with the reason. A test holds the two
paths to the same records.

What a columnar mapper gives per row is the record's fields as plain values (the cells, checked
and normalized), ready for :mod:`orjson` to write as a :class:`~billing_schemas.events.UsageRecord`
once the load has added the ``record_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from billing_schemas.money import known_currency_codes


@cache
def text(value: str | None) -> pa.Scalar:
    """A string scalar, made once. pyarrow turns a Python ``str`` argument into a scalar on
    every call, and looks for pandas each time it does (about 0.3 ms, more than the kernel)."""
    return pa.scalar(value, pa.string())


FALSE = pa.scalar(False)  # noqa: FBT003 - a constant, not a flag
TRUE = pa.scalar(True)  # noqa: FBT003

_CANONICAL_DECIMAL = r"^-?(0|[1-9][0-9]{0,23})(\.[0-9]{1,16})?$"
"""The form ``format(Decimal(x), 'f')`` gives back unchanged, within the bounds of money on the
wire (below 10^24, at most 40 digits; docs/money.md): the cell can go on the wire as is. Any
other cell goes the row path, where :func:`~billing_schemas.money.parse_decimal` judges it."""
_PLAIN_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}:[0-9]{2})?(Z|\+00:00)?$"
"""UTC (or zone-less) to the second: what the exports write; other forms go the row path."""
_ISO = "%Y-%m-%dT%H:%M:%SZ"
_EIGHT = pa.scalar(8, pa.int32())


@dataclass(frozen=True)
class ColumnarBatch:
    """What a columnar mapper gives for one batch of rows.

    ``fields`` names the record fields and ``values`` holds one list per field (a row's record
    is ``dict(zip(fields, row))``); ``ok`` says which rows the fast path mapped (the others go
    to the row mapper). The key fields are repeated as lists of their own ("" where not ok).
    """

    content: list[str]
    ok: list[bool]
    fields: tuple[str, ...]
    values: list[list[Any]]
    provider: list[str]
    billing_account: list[str]
    period: list[str]
    sub_account: list[str]
    currency: list[str]
    billed_cost: list[str]


class Columns:
    """One batch's columns, trimmed, with the fast path's running verdict per row."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.batch = batch
        self.ok: pa.Array = pa.array([True] * batch.num_rows, pa.bool_())
        self._trimmed: dict[str, pa.Array] = {}

    def cell(self, column: str) -> pa.Array:
        """The column's cells, trimmed; empty ones are null (as the row mapper's ``optional``)."""
        found = self._trimmed.get(column)
        if found is None:
            index = self.batch.schema.get_field_index(column)
            if index < 0:
                found = pa.nulls(self.batch.num_rows, pa.string())
            else:
                trimmed = pc.utf8_trim_whitespace(self.batch.column(index))
                found = pc.if_else(pc.equal(trimmed, text("")), text(None), trimmed)
            self._trimmed[column] = found
        return found

    def require(self, condition: pa.Array) -> None:
        """Rows where ``condition`` is not true leave the fast path."""
        self.ok = pc.and_(self.ok, pc.fill_null(condition, FALSE))

    def required(self, column: str) -> pa.Array:
        """A cell that must have a value."""
        value = self.cell(column)
        self.require(pc.is_valid(value))
        return value

    def decimal(self, column: str, *, is_required: bool) -> pa.Array:
        """A decimal cell in canonical form (anything else goes the row path)."""
        value = self.required(column) if is_required else self.cell(column)
        self.require(
            pc.or_kleene(pc.is_null(value), pc.match_substring_regex(value, _CANONICAL_DECIMAL))
        )
        return value

    def timestamp(self, column: str) -> pa.Array:
        """A required UTC date-time, as ``YYYY-MM-DDTHH:MM:SSZ``.

        A bill has few distinct timestamps (hours of a month): each is checked once, on the
        column's dictionary, and the verdicts are spread back to the rows."""
        encoded = pc.dictionary_encode(self.required(column))
        distinct = encoded.dictionary
        plain = pc.match_substring_regex(distinct, _PLAIN_TIMESTAMP)
        date = pc.utf8_slice_codeunits(distinct, 0, 10)
        time = pc.utf8_slice_codeunits(distinct, 11, 19)
        time = pc.if_else(pc.equal(pc.utf8_length(time), _EIGHT), time, text("00:00:00"))
        joined = pc.binary_join_element_wise(date, text("T"), time, text("Z"), text(""))
        parsed = pc.strptime(joined, format=_ISO, unit="s", error_is_null=True)
        # strptime rolls 2024-09-31 over to October: a real date prints back the same
        good = pc.and_kleene(plain, pc.equal(pc.strftime(parsed, format=_ISO), joined))
        self.require(pc.take(pc.fill_null(good, FALSE), encoded.indices))
        return pc.take(joined, encoded.indices)

    def currency(self, column: str) -> pa.Array:
        """A known ISO 4217 code, upper-cased."""
        value = pc.utf8_upper(self.required(column))
        self.require(pc.is_in(value, value_set=_currencies()))
        return value


@cache
def _currencies() -> pa.Array:
    return pa.array(sorted(known_currency_codes()), pa.string())


def content_of(batch: pa.RecordBatch) -> list[str]:
    """Per row, the text a line's identity is digested from: the same text
    :func:`billing_ingest.domain.cells.row_content` makes of a row dict."""
    names = sorted(batch.schema.names)
    joined: list[str] = pc.binary_join_element_wise(
        *(batch.column(batch.schema.get_field_index(name)) for name in names),
        text("\x1f"),
        null_handling="replace",
        null_replacement="",
    ).to_pylist()
    return joined


_STRING = r'"([^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_FLAT_OBJECT = rf"^\{{\s*({_STRING}\s*:\s*{_STRING}\s*(,\s*{_STRING}\s*:\s*{_STRING}\s*)*)?\}}$"
"""A JSON object whose values are all strings: it goes on the wire as it is."""


def tags_of(value: pa.Array) -> tuple[list[orjson.Fragment], pa.Array]:
    """Tags cells as JSON objects of strings, and which rows' cells were such objects.

    A flat object of strings is passed on as it is (as an :class:`orjson.Fragment`); any
    other cell is parsed (values become strings, as the record's ``tags`` holds them) or, if
    it is not an object, left to the row mapper.
    """
    flat: list[bool] = pc.fill_null(pc.match_substring_regex(value, _FLAT_OBJECT), TRUE).to_pylist()
    cells: list[str | None] = value.to_pylist()
    out: list[orjson.Fragment] = []
    good: list[bool] = []
    for text, plain in zip(cells, flat, strict=True):
        if text is None:
            out.append(_NO_TAGS)
            good.append(True)
        elif plain:
            out.append(orjson.Fragment(text))
            good.append(True)
        else:
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                parsed = None
            is_object = isinstance(parsed, dict)
            good.append(is_object)
            out.append(
                orjson.Fragment(orjson.dumps({str(k): str(v) for k, v in parsed.items()}))
                if is_object
                else _NO_TAGS
            )
    return out, pa.array(good, pa.bool_())


_NO_TAGS = orjson.Fragment(b"{}")


def texts(value: pa.Array) -> list[str]:
    """A string column as a list, "" for null."""
    filled: list[str] = pc.fill_null(value, text("")).to_pylist()
    return filled
