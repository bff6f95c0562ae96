"""Streaming Parquet reading with pyarrow: row groups in batches, every cell turned to text.

Providers write money into Parquet as decimals or doubles; each column is cast to a string
with pyarrow (a decimal keeps its digits, a double its shortest repr), then parsed as a Decimal
by the format's mapper like a CSV cell, so one mapper serves both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing_ingest.adapters.csv_reader import MalformedRow, RowBatch, UnreadableBillError

BATCH_ROWS = 65_536


@dataclass
class ParquetStream:
    """An open Parquet file: its header, then its rows in batches (row numbers as if CSV)."""

    path: Path
    header: list[str]
    malformed: list[MalformedRow] = field(default_factory=list)  # Parquet rows are always whole

    def batches(self) -> Iterator[RowBatch]:
        """Yield the rows in batches of at most ``BATCH_ROWS``."""
        next_row = 2
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=BATCH_ROWS):
            as_text = pa.RecordBatch.from_arrays(
                [pc.cast(column, pa.string()) for column in batch.columns],
                names=batch.schema.names,
            )
            yield RowBatch(next_row, arrow=as_text)
            next_row += as_text.num_rows


def open_parquet(path: Path) -> ParquetStream:
    """Open a Parquet file for streaming."""
    try:
        names = pq.ParquetFile(path).schema_arrow.names
    except (pa.ArrowInvalid, OSError) as exc:  # no footer: a cut download, or not Parquet
        msg = f"it starts like a Parquet file but cannot be read as one ({exc})"
        raise UnreadableBillError(msg) from None
    return ParquetStream(path=path, header=list(names))


def is_parquet(path: Path) -> bool:
    """Parquet files start (and end) with the magic bytes ``PAR1``."""
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"
