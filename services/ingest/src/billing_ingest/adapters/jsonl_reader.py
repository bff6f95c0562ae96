"""Streaming JSON-lines reading with pyarrow: one nested object per line -> flat rows of text.

The file is read in chunks of whole lines (``.gz`` decompressed on the fly) and each chunk is
parsed by ``pyarrow.json``, so memory stays bounded and no Python loop touches every line.
Rows come out like a CSV row, so a format's mapper serves both:

* nested objects are flattened to dotted names (``service.description``), as BigQuery's CSV
  export names them; arrays (``credits``, ``labels``) become one cell of JSON text;
* money never passes through a float: the numeric fields the formats name
  (:data:`~billing_ingest.domain.formats.JSON_DECIMAL_FIELDS`) are parsed straight from the
  JSON text into 76-digit decimals and written back without trailing zeros; other numbers
  are cast to text (shortest form);
* a null and a missing field are the same (no cell), so a row's identity does not depend on
  how a chunk was cut;
* a chunk that pyarrow cannot parse is parsed again line by line, so only the bad lines are
  rejected (as malformed rows) and the rest is read.

Rows are numbered by object: the first object in the file is row 1.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import json as pajson

from billing_ingest.adapters.csv_reader import MalformedRow, RowBatch

CHUNK_BYTES = 8 << 20
DECIMAL = pa.decimal256(76, 38)
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")


def is_json_lines(path: Path) -> bool:
    """``.jsonl``, ``.ndjson`` or ``.json``, optionally compressed (``.gz``, ``.bz2``)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2"):
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in JSON_SUFFIXES


def _decimal_schema(paths: tuple[str, ...]) -> pa.Schema:
    """An explicit schema holding only the decimal fields (``a.b``: nested; ``a[].b``: in an
    array of objects); pyarrow infers every other field."""
    tree: dict[str, object] = {}
    for path in paths:
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            assert isinstance(child, dict)
            node = child
        node[parts[-1]] = DECIMAL

    def build(name: str, spec: object) -> pa.Field:
        is_list = name.endswith("[]")
        bare = name.removesuffix("[]")
        if isinstance(spec, dict):
            typ: pa.DataType = pa.struct([build(k, v) for k, v in spec.items()])
        else:
            assert isinstance(spec, pa.DataType)
            typ = spec
        return pa.field(bare, pa.list_(typ) if is_list else typ)

    return pa.schema([build(k, v) for k, v in tree.items()])


def _text(value: object) -> object:
    """Decimals as plain text without trailing zeros, for json.dumps of arrays."""
    if isinstance(value, Decimal):
        return _decimal_text(value)
    return str(value)


def _decimal_text(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _column_texts(column: pa.ChunkedArray) -> list[str | None]:
    typ = column.type
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        # most arrays are empty (no credits, no labels): only the others go through Python
        lengths = pc.list_value_length(column)
        texts: list[str | None] = [None if n is None else "[]" for n in lengths.to_pylist()]
        filled = pc.greater(lengths, 0)
        values = iter(column.filter(filled).to_pylist())
        for index, is_filled in enumerate(filled.to_pylist()):
            if is_filled:
                texts[index] = json.dumps(next(values), default=_text, separators=(",", ":"))
        return texts
    if pa.types.is_map(typ):
        return [
            None if v is None else json.dumps(v, default=_text, separators=(",", ":"))
            for v in column.to_pylist()
        ]
    if pa.types.is_null(typ):
        return [None] * len(column)
    as_text = pc.cast(column, pa.string())
    if pa.types.is_decimal(typ):
        # 76-digit decimals print every zero of their scale: 24.000... -> 24
        as_text = pc.utf8_rtrim(pc.utf8_rtrim(as_text, characters="0"), characters=".")
    result: list[str | None] = as_text.to_pylist()
    return result


def _flat(table: pa.Table) -> pa.Table:
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


def _rows(table: pa.Table) -> list[dict[str, str | None]]:
    """Flat rows of text; null cells are left out."""
    table = _flat(table)
    names = table.schema.names
    columns = [_column_texts(table.column(i)) for i in range(table.num_columns)]
    return [
        {name: cell for name, cell in zip(names, cells, strict=True) if cell is not None}
        for cells in zip(*columns, strict=True)
    ] or []


@dataclass
class JsonLinesStream:
    """An open JSON-lines file: its (flattened) header, then its rows in batches."""

    path: Path
    header: list[str]
    schema: pa.Schema
    malformed: list[MalformedRow] = field(default_factory=list)
    chunk_bytes: int = CHUNK_BYTES

    def _parse(self, chunk: bytes) -> pa.Table:
        return pajson.read_json(
            io.BytesIO(chunk),
            read_options=pajson.ReadOptions(use_threads=False, block_size=len(chunk) + 1),
            parse_options=pajson.ParseOptions(
                explicit_schema=self.schema, unexpected_field_behavior="infer"
            ),
        )

    def batches(self) -> Iterator[RowBatch]:
        """Yield the rows chunk by chunk; lines pyarrow cannot read go to ``malformed``."""
        next_row = 1
        for chunk in _line_chunks(self.path, self.chunk_bytes):
            try:
                rows = _rows(self._parse(chunk))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                yield from self._line_by_line(chunk, next_row)
                next_row += sum(1 for line in chunk.split(b"\n") if line.strip())
                continue
            yield RowBatch(next_row, rows)
            next_row += len(rows)

    def _line_by_line(self, chunk: bytes, first_row: int) -> Iterator[RowBatch]:
        """Parse a chunk one line at a time: a bad line is malformed, the others are rows."""
        row_number = first_row
        good: list[dict[str, str | None]] = []
        start = row_number
        for line in (raw for raw in chunk.split(b"\n") if raw.strip()):
            try:
                parsed = _rows(self._parse(line + b"\n"))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                if good:
                    yield RowBatch(start, good)
                    good = []
                reason = str(exc).splitlines()[0]
                self.malformed.append(
                    MalformedRow(
                        row_number, f"line is not a JSON object we can read: {reason}", _t(line)
                    )
                )
                start = row_number + 1
            else:
                good += parsed
            row_number += 1
        if good:
            yield RowBatch(start, good)


def _t(line: bytes) -> str:
    return line[:2000].decode("utf-8", errors="replace")


def _line_chunks(path: Path, size: int) -> Iterator[bytes]:
    """The file's bytes in chunks that end at a line end (the last one may not)."""
    with pa.input_stream(str(path), compression="detect") as stream:
        rest = b""
        while block := stream.read(size):
            data = rest + block
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1 :]
            if data[: cut + 1].strip():
                yield data[: cut + 1]
        if rest.strip():
            yield rest + b"\n"


def open_jsonl(
    path: Path, *, decimal_fields: tuple[str, ...], chunk_bytes: int = CHUNK_BYTES
) -> JsonLinesStream:
    """Open a JSON-lines file for streaming; the header is the first chunk's flat field names
    (decimal fields that chunk never has are not in it)."""
    schema = _decimal_schema(decimal_fields)
    stream = JsonLinesStream(path=path, header=[], schema=schema, chunk_bytes=chunk_bytes)
    hinted = {p.replace("[]", "") for p in decimal_fields}
    for chunk in _line_chunks(path, min(chunk_bytes, 1 << 20)):
        try:
            table = _flat(stream._parse(chunk))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # a bad line among the first ones: learn the names from the good lines
            first = next(
                (t for line in chunk.split(b"\n") if (t := _try(stream, line)) is not None),
                None,
            )
            if first is None:
                break
            table = _flat(first)
        stream.header = [
            name
            for name, column in zip(table.schema.names, table.columns, strict=True)
            if name not in hinted or column.null_count < len(column)
        ]
        break
    return stream


def _try(stream: JsonLinesStream, line: bytes) -> pa.Table | None:
    if not line.strip():
        return None
    try:
        return stream._parse(line + b"\n")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
