"""Streaming CSV reading with pyarrow: bounded memory, every cell kept as text.

Money must never pass through a float, so every column is read as a string and parsed as a
Decimal later. ``NULL`` and empty cells both mean "no value" (as the FOCUS sample data has it).
Rows with the wrong number of fields are not fatal: pyarrow reports each one to a handler,
which records it as a rejection and skips it, so the rest of the file is still read.
``.gz`` and ``.bz2`` files are decompressed on the fly (pyarrow infers it from the name).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from pyarrow import csv

NULL_VALUES = ["", "NULL", "null"]


@dataclass(frozen=True)
class MalformedRow:
    """A row pyarrow could not split into the header's columns."""

    row_number: int | None
    reason: str
    text: str


@dataclass
class RowBatch:
    """Rows as dicts, with their spreadsheet row numbers (header = 1)."""

    first_row_number: int
    rows: list[dict[str, str | None]]


@dataclass
class CsvStream:
    """An open CSV file: its header, then its rows in batches."""

    path: Path
    header: list[str]
    malformed: list[MalformedRow] = field(default_factory=list)
    _reader: csv.CSVStreamingReader | None = None

    def batches(self) -> Iterator[RowBatch]:
        """Yield the rows in batches (pyarrow's block size bounds the memory)."""
        assert self._reader is not None
        next_row = 2
        for record_batch in self._reader:
            rows = record_batch.to_pylist()
            yield RowBatch(next_row, rows)
            next_row += len(rows)


def read_header(path: Path) -> list[str]:
    """The column names of a CSV file (empty if it cannot be read as CSV)."""
    try:
        # only the first block is read to learn the names
        reader = csv.open_csv(
            path,
            read_options=csv.ReadOptions(block_size=1 << 20),
            parse_options=csv.ParseOptions(invalid_row_handler=lambda _: "skip"),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return []
    return list(reader.schema.names)


def open_csv(path: Path, *, block_size: int = 8 << 20) -> CsvStream:
    """Open a CSV file for streaming, all columns as text."""
    header = read_header(path)
    stream = CsvStream(path=path, header=header)

    def on_invalid(row: csv.InvalidRow) -> str:
        stream.malformed.append(
            MalformedRow(
                row_number=row.number,
                reason=(
                    f"row has {row.actual_columns} fields, the header has {row.expected_columns}"
                ),
                text=row.text,
            )
        )
        return "skip"

    stream._reader = csv.open_csv(
        path,
        read_options=csv.ReadOptions(block_size=block_size, use_threads=False),
        parse_options=csv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=csv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()),
            null_values=NULL_VALUES,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    return stream
