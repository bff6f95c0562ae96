"""Streaming CSV reading with pyarrow: bounded memory, every cell kept as text.

Money must never pass through a float, so every column is read as a string and parsed as a
Decimal later. ``NULL`` and empty cells both mean "no value" (as the FOCUS sample data has it).
Rows with the wrong number of fields are not fatal: pyarrow reports each one to a handler,
which records it as a rejection and skips it, so the rest of the file is still read.
``.gz`` and ``.bz2`` files are decompressed on the fly (pyarrow infers it from the name).
A file that is not UTF-8 text, or has a line longer than the read block (1 MiB: a cell of
megabytes, a header of a million columns, a compressed file that unpacks to one endless line),
is not read at all: :class:`UnreadableBillError` says which, instead of pyarrow's words.
"""

from __future__ import annotations

import codecs
import csv as pycsv
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from pyarrow import csv

NULL_VALUES = ["", "NULL", "null"]
BLOCK_SIZE = 1 << 20


class UnreadableBillError(ValueError):
    """The file cannot be read as a CSV bill at all (its encoding, a line's length)."""


def _unreadable(exc: Exception, block_size: int) -> UnreadableBillError:
    """pyarrow's error, said the way a person loading a bill can act on."""
    text = str(exc)
    if isinstance(exc, OSError):  # "Truncated compressed stream", or the file is unreadable
        return UnreadableBillError(f"{text} (an interrupted download?): download it again")
    if "straddl" in text:
        return UnreadableBillError(
            f"a line is longer than {block_size >> 20} MiB (a huge cell, a header of that "
            "many columns, or a compressed stream that unpacks to one endless line): not a "
            "bill we read"
        )
    if "UTF8" in text or "UTF-8" in text:
        return UnreadableBillError("it is not UTF-8 text: save the file as UTF-8")
    return UnreadableBillError(text)


@dataclass(frozen=True)
class MalformedRow:
    """A row pyarrow could not split into the header's columns."""

    row_number: int | None
    reason: str
    text: str


@dataclass
class RowBatch:
    """A batch of rows with their spreadsheet row numbers (header = 1).

    Readers give either ``arrow`` (a record batch whose columns are all strings: the columnar
    path reads it without making a dict per row) or the ``rows`` themselves.
    """

    first_row_number: int
    _rows: list[dict[str, str | None]] | None = None
    arrow: pa.RecordBatch | None = None
    row_numbers: list[int] | None = None
    """Set when rows were skipped inside the batch (malformed): the number of each row."""

    @property
    def rows(self) -> list[dict[str, str | None]]:
        """The rows as dicts of column -> text (None for an empty cell)."""
        if self._rows is None:
            assert self.arrow is not None
            self._rows = self.arrow.to_pylist()
        return self._rows

    def __len__(self) -> int:
        return self.arrow.num_rows if self.arrow is not None else len(self.rows)

    def number(self, index: int) -> int:
        """The row number of the batch's ``index``-th row."""
        if self.row_numbers is not None:
            return self.row_numbers[index]
        return self.first_row_number + index


@dataclass
class CsvStream:
    """An open CSV file: its header, then its rows in batches."""

    path: Path
    header: list[str]
    malformed: list[MalformedRow] = field(default_factory=list)
    _reader: csv.CSVStreamingReader | None = None

    def batches(self) -> Iterator[RowBatch]:
        """Yield the rows in batches (pyarrow's block size bounds the memory).

        Malformed rows are skipped by pyarrow and reported in :attr:`malformed` while their
        block is read; the good rows around them keep their true numbers.
        """
        if self._reader is None:
            return
        next_row = 2
        reported = 0
        for record_batch in _checked(self._reader):
            skipped = {m.row_number for m in self.malformed[reported:] if m.row_number is not None}
            reported = len(self.malformed)
            numbers: list[int] | None = None
            if skipped:
                numbers = []
                candidate = next_row
                while len(numbers) < record_batch.num_rows:
                    if candidate not in skipped:
                        numbers.append(candidate)
                    candidate += 1
                last = numbers[-1] if numbers else next_row - 1
                next_row = max(last, *skipped) + 1
            else:
                next_row += record_batch.num_rows
            first = numbers[0] if numbers else next_row - record_batch.num_rows
            yield RowBatch(first, arrow=record_batch, row_numbers=numbers)


def _checked(reader: csv.CSVStreamingReader) -> Iterator[pa.RecordBatch]:
    """The reader's batches; pyarrow's errors reading them as :class:`UnreadableBillError`."""
    batches = iter(reader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as exc:
            raise _unreadable(exc, BLOCK_SIZE) from None
        yield batch


def read_header(path: Path) -> list[str]:
    """The column names of a CSV file (empty if it is empty or a header cannot be found;
    :class:`UnreadableBillError` if it is not UTF-8 text or its first line is longer than
    the read block)."""
    with suppress(OSError), pa.input_stream(str(path), compression="detect") as stream:
        _check_text(stream.read(BLOCK_SIZE))  # before pyarrow, which cannot report it
    try:
        # only the first block is read to learn the names
        reader = csv.open_csv(
            path,
            read_options=csv.ReadOptions(block_size=BLOCK_SIZE),
            parse_options=csv.ParseOptions(invalid_row_handler=lambda _: "skip"),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return _lone_line(path)
    except OSError as exc:  # a compressed stream that ends inside its first block
        raise _unreadable(exc, BLOCK_SIZE) from None
    return list(reader.schema.names)


def _lone_line(path: Path) -> list[str]:
    """The names of a file that is a header without its line end, which pyarrow cannot read
    (it needs a whole line to count the columns); [] for a file with nothing in it, and
    :class:`UnreadableBillError` for one that is not text or whose first line never ends."""
    with pa.input_stream(str(path), compression="detect") as stream:
        head = stream.read(BLOCK_SIZE + 1)
    _check_text(head)
    if len(head) > BLOCK_SIZE and b"\n" not in head and b"\r" not in head:
        raise _unreadable(pa.ArrowInvalid("straddling object"), BLOCK_SIZE)
    if not head.strip() or b"\n" in head or b"\r" in head:
        return []
    try:
        [names] = list(pycsv.reader([head.decode("utf-8-sig")]))
    except (UnicodeDecodeError, ValueError, pycsv.Error):
        return []
    return names


def open_csv(path: Path, *, block_size: int = BLOCK_SIZE) -> CsvStream:
    """Open a CSV file for streaming, all columns as text.

    pyarrow's streaming reader reads a fixed number of blocks ahead (about 16): the block size
    bounds the memory (1 MiB: ~16 MiB ahead, ~1,500 FOCUS rows a batch).
    """
    header = read_header(path)
    stream = CsvStream(path=path, header=header)
    if not header:  # empty, or not CSV: no reader (pyarrow refuses a file without a header)
        return stream

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

    try:
        stream._reader = _open_reader(path, header, block_size, on_invalid)
    except (pa.ArrowInvalid, OSError) as exc:
        if "Empty CSV file" not in str(exc):
            raise _unreadable(exc, block_size) from None
        stream._reader = None  # a header without its line end: no rows to read
    return stream


def _check_text(head: bytes) -> None:
    """:class:`UnreadableBillError` when the file's first block is not UTF-8 text."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=False)  # a character cut by the block's end is fine
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        byte = head[exc.start]
        msg = f"line {line} is not UTF-8 text (byte 0x{byte:02x}): save the file as UTF-8"
        raise UnreadableBillError(msg) from None


def _open_reader(
    path: Path, header: list[str], block_size: int, on_invalid: Callable[[csv.InvalidRow], str]
) -> csv.CSVStreamingReader:
    return csv.open_csv(
        path,
        read_options=csv.ReadOptions(block_size=block_size, use_threads=False),
        parse_options=csv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=True),
        convert_options=csv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()),
            null_values=NULL_VALUES,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
