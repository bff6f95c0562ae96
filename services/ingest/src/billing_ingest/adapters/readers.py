"""Which reader opens a bill file: Parquet by its magic bytes, CloudKitty's API output by its
first key (a ``.json`` file beginning ``{"dataframes"``, ``{"columns"``, ``{"total"``...),
JSON lines by its name (``.jsonl``, ``.ndjson``, ``.json``, optionally ``.gz``), CSV
otherwise (``.csv.gz`` too).

Every reader gives the same shape: ``header``, ``batches()`` of rows (dicts of column -> text
or None) with their first row number, and ``malformed`` rows it could not split.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from billing_ingest.adapters.cloudkitty_reader import (
    CloudKittyStream,
    is_cloudkitty_api,
    open_cloudkitty,
)
from billing_ingest.adapters.csv_reader import CsvStream, open_csv
from billing_ingest.adapters.jsonl_reader import JsonLinesStream, is_json_lines, open_jsonl
from billing_ingest.adapters.parquet_reader import ParquetStream, is_parquet, open_parquet
from billing_ingest.domain.formats import JSON_DECIMAL_FIELDS

BillStream = CsvStream | ParquetStream | JsonLinesStream | CloudKittyStream


def open_bill(path: Path) -> BillStream:
    """Open a bill file with the reader its content or name calls for."""
    if is_parquet(path):
        return open_parquet(path)
    if is_cloudkitty_api(path):
        return open_cloudkitty(path)
    if is_json_lines(path):
        return open_jsonl(path, decimal_fields=JSON_DECIMAL_FIELDS)
    return open_csv(path)


def is_empty(path: Path) -> bool:
    """Whether the file holds nothing but whitespace (once decompressed, for ``.gz``/``.bz2``)."""
    with pa.input_stream(str(path), compression="detect") as stream:
        while block := stream.read(1 << 20):
            if block.strip():
                return False
    return True


_COMPRESSED = frozenset({".gz", ".bz2", ".zst", ".lz4", ".br"})
"""Suffixes pyarrow decompresses (``compression="detect"``)."""


def cut_line(path: Path) -> int | None:
    """The number of the file's last line when that line has no line end (the file was cut,
    as an interrupted download leaves it), else None. Text files only (CSV, JSON lines, also
    compressed: a compressed stream that ends early is cut at the line it stops in).

    A plain file that ends with a line end is answered from its last byte; otherwise (and for
    compressed files) the whole file is read, so it is asked only when a cut would do harm.
    """
    if is_parquet(path):
        return None  # a cut Parquet file has no footer and cannot be opened at all
    if path.suffix.lower() not in _COMPRESSED:
        with path.open("rb") as handle:
            handle.seek(max(path.stat().st_size - 1, 0))
            if handle.read(1) in (b"", b"\n", b"\r"):
                return None
    lines, last = 0, b""
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            while block := stream.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
    except OSError:  # "Truncated compressed stream"
        return lines + 1
    if last in (b"", b"\n", b"\r"):
        return None
    return lines + 1
