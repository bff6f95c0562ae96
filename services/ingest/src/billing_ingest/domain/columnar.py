"""Column-at-a-time building blocks for the fast mapping path (pure: pyarrow compute, no I/O).

A format's row mapper (one dict per row, one Python call per cell) is the reference; it is what
turns a bad cell into a rejection with its column and reason. Doing that for a million rows costs
more than the rest of the load together, so a format may also offer a *columnar* mapper: it
checks whole columns with pyarrow compute, and for every row whose cells are all in the plain
form it writes the record's JSON directly. Any row with a cell in another form (an exponent, a
zone other than UTC, a control character, an unknown code...) is left to the row mapper, which
either accepts it, giving the same record, or rejects it with the reason. A test holds the two
paths to the same records.

What a columnar mapper gives per row is the record's JSON members (every field but
``record_id``), written by pyarrow compute over whole columns: cells are checked and
normalized, quoted and escaped as :mod:`orjson` would write them, and joined. The load adds the
``record_id`` and the envelope around them; Python touches each row only for its digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

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
_PLAIN_TIMESTAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])?(Z|\+00:00)?$"
)
"""UTC (or zone-less) to the second: what the exports write; other forms go the row path."""
_DATE = "%Y-%m-%d"
_EIGHT = pa.scalar(8, pa.int32())


@dataclass(frozen=True)
class ColumnarBatch:
    """What a columnar mapper gives for one batch of rows.

    ``ok`` says which rows the fast path mapped (the others go to the row mapper); for those,
    ``members`` holds the record's JSON members without ``record_id`` (UTF-8, no braces) and
    ``sub_account`` its key. ``content`` is every row's identity text (:func:`content_of`).
    ``scope`` lists the distinct ``provider|billing account|period`` of the mapped rows in the
    order they first appear, and ``billed_cost`` their billed cost cells by currency, in row
    order. (Rows that are not ok hold ``b""`` / ``""``.)
    """

    content: list[bytes]
    ok: list[bool]
    members: list[bytes]
    sub_account: list[str]
    scope: list[str]
    billed_cost: dict[str, list[str]]


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

        A bill has few distinct timestamps (hours of a month) and fewer dates: each timestamp
        is checked once, on the column's dictionary, each date once more on the dates' own
        dictionary (``strptime`` rolls 2024-09-31 over to October: a real date prints back
        the same), and the verdicts are spread back to the rows."""
        encoded = pc.dictionary_encode(self.required(column))
        distinct = encoded.dictionary
        plain = pc.match_substring_regex(distinct, _PLAIN_TIMESTAMP)
        date = pc.utf8_slice_codeunits(distinct, 0, 10)
        dates = pc.dictionary_encode(date)
        parsed = pc.strptime(dates.dictionary, format=_DATE, unit="s", error_is_null=True)
        real = pc.equal(pc.strftime(parsed, format=_DATE), dates.dictionary)
        good = pc.and_kleene(plain, pc.take(pc.fill_null(real, FALSE), dates.indices))
        time = pc.utf8_slice_codeunits(distinct, 11, 19)
        time = pc.if_else(pc.equal(pc.utf8_length(time), _EIGHT), time, text("00:00:00"))
        joined = pc.binary_join_element_wise(date, text("T"), time, text("Z"), text(""))
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


def content_of(batch: pa.RecordBatch) -> pa.Array:
    """Per row, the text a line's identity is digested from: the same text
    :func:`billing_ingest.domain.cells.row_content` makes of a row dict."""
    names = sorted(batch.schema.names)
    return pc.binary_join_element_wise(
        *(batch.column(batch.schema.get_field_index(name)) for name in names),
        text("\x1f"),
        null_handling="replace",
        null_replacement="",
    )


def control_free(value: pa.Array) -> pa.Array:
    """Which cells hold no control character (U+0000-U+001F), as JSON writes them unescaped.

    Checked over the column's bytes at once (their smallest byte), and cell by cell only when
    some cell has one."""
    data = _cell_bytes(value)
    if data is not None:
        octets = pa.Array.from_buffers(pa.uint8(), data.size, [None, data])
        if pc.min(octets).as_py() < _FIRST_PRINTABLE:
            return pc.invert(pc.match_substring_regex(value, r"[\x00-\x1f]"))
    return pa.array([True] * len(value), pa.bool_())


_FIRST_PRINTABLE = 0x20


def json_string(value: pa.Array) -> pa.Array:
    """Cells with ``"`` and ``\\`` escaped, as orjson writes them inside a JSON string (a row
    with a control character must leave the fast path: :func:`control_free`)."""
    if not _holds(value, b'"') and not _holds(value, b"\\"):
        return value
    return pc.replace_substring(pc.replace_substring(value, "\\", "\\\\"), '"', '\\"')


def _cell_bytes(value: pa.Array) -> pa.Buffer | None:
    """The bytes of all the column's cells, one after the other (no copy); None if none."""
    _, offsets_buffer, data = value.buffers()
    offsets = pa.Array.from_buffers(
        pa.int32(), len(value) + 1, [None, offsets_buffer], value.offset
    )
    first, last = offsets[0].as_py(), offsets[-1].as_py()
    if data is None or last == first:
        return None
    return data[first:last]


def _holds(value: pa.Array, needle: bytes) -> bool:
    """Whether any cell of the column holds the byte ``needle`` (one memchr over the column:
    pyarrow's substring kernels look cell by cell)."""
    data = _cell_bytes(value)
    return data is not None and needle in data.to_pybytes()


@dataclass(frozen=True)
class Json:
    """A column whose cells are JSON text already (written as they are)."""

    value: pa.Array


Member = tuple[str, "pa.Array | Json | str"]
"""A record field and its value: a column of plain strings (written quoted, null as
``null``), a column of JSON text, or JSON text that is the same for every row."""


def json_members(members: list[Member]) -> pa.Array:
    """``"name":value`` joined with commas, per row; a row with a null in a column that has
    no null elsewhere comes out null (a required cell: the row is not ok anyway).

    A batch's columns tend to be either full or empty: those are written with the quotes (or
    the ``null``) in the constant text around them, and only a column holding both values and
    nulls costs a pass of its own."""
    parts: list[pa.Array | str] = []
    for position, (name, value) in enumerate(members):
        parts.append(("," if position else "") + orjson.dumps(name).decode() + ":")
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, Json):
            parts.append(value.value)
        elif value.null_count == len(value):
            parts.append("null")
        elif value.null_count == 0:
            parts += ['"', value, '"']
        else:
            quoted = pc.binary_join_element_wise(_QUOTE, value, _QUOTE, text(""))
            parts.append(pc.fill_null(quoted, _NULL))
    merged: list[pa.Array | pa.Scalar] = []
    pending = ""
    for part in parts:
        if isinstance(part, str):
            pending += part
            continue
        if pending:
            merged.append(pa.scalar(pending, pa.string()))
            pending = ""
        merged.append(part)
    if pending:
        merged.append(pa.scalar(pending, pa.string()))
    return pc.binary_join_element_wise(*merged, text(""))


_QUOTE = text('"')
_NULL = text("null")


_STRING = r'"([^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_FLAT_OBJECT = rf"^\{{\s*({_STRING}\s*:\s*{_STRING}\s*(,\s*{_STRING}\s*:\s*{_STRING}\s*)*)?\}}$"
"""A JSON object whose values are all strings: it goes on the wire as it is."""


def tags_of(value: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Tags cells as JSON objects of strings, and which rows' cells were such objects.

    A flat object of strings is passed on as it is; an empty cell is ``{}``; any other cell is
    parsed (values become strings, as the record's ``tags`` holds them) or, if it is not an
    object, left to the row mapper.
    """
    flat = pc.fill_null(pc.match_substring_regex(value, _FLAT_OBJECT), TRUE)
    if pc.all(flat).as_py():
        return pc.fill_null(value, _NO_TAGS_TEXT), flat
    cells: list[str | None] = value.to_pylist()
    out: list[str] = []
    good: list[bool] = []
    for cell, plain in zip(cells, flat.to_pylist(), strict=True):
        if cell is None:
            out.append("{}")
            good.append(True)
        elif plain:
            out.append(cell)
            good.append(True)
        else:
            try:
                parsed = orjson.loads(cell)
            except orjson.JSONDecodeError:
                parsed = None
            is_object = isinstance(parsed, dict)
            good.append(is_object)
            out.append(
                orjson.dumps({str(k): str(v) for k, v in parsed.items()}).decode()
                if is_object
                else "{}"
            )
    return pa.array(out, pa.string()), pa.array(good, pa.bool_())


_NO_TAGS_TEXT = text("{}")


def texts(value: pa.Array) -> list[str]:
    """A string column as a list, "" for null."""
    filled: list[str] = pc.fill_null(value, text("")).to_pylist()
    return filled
