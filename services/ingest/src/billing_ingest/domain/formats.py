"""The bill formats ingest reads, detected from a file's header (pure).

Each format names the columns it cannot do without and maps one row to a usage record. The
first format whose required columns are all in the header is the file's format; ``--format``
overrides the detection (and the header must still fit it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from billing_ingest.domain import aws_cur, focus
from billing_ingest.domain.cells import Row, RowProblem
from billing_ingest.domain.columnar import ColumnarBatch
from billing_ingest.domain.focus_columnar import focus_batch_to_json
from billing_schemas.events import UsageRecord


class RowMapper(Protocol):
    """One row to a usage record, or the reason it is rejected."""

    def __call__(
        self,
        row: Row,
        *,
        bill_id: str,
        file_name: str,
        row_number: int,
        digest: str,
        occurrence: int,
    ) -> UsageRecord | RowProblem: ...


class ColumnarMapper(Protocol):
    """A batch of rows (every column a string) to record JSON, rows it cannot do left out."""

    def __call__(
        self, batch: pa.RecordBatch, *, bill_id: str, file_name: str, row_numbers: list[int]
    ) -> ColumnarBatch: ...


@dataclass(frozen=True)
class BillFormat:
    """A format: its name (``--format``), what it needs in the header, how a row maps.

    ``columnar`` is the optional fast path (:mod:`billing_ingest.domain.columnar`);
    ``quantity_columns`` names the bill's column of each record quantity, for rejections.
    """

    name: str
    title: str
    required_columns: tuple[str, ...]
    to_record: RowMapper
    columnar: ColumnarMapper | None = None
    quantity_columns: dict[str, str] = field(default_factory=dict)

    def missing(self, header: list[str]) -> list[str]:
        """Required columns the header lacks."""
        present = set(header)
        return [c for c in self.required_columns if c not in present]


FORMATS: tuple[BillFormat, ...] = (
    BillFormat(
        "focus",
        "FOCUS 1.x",
        focus.REQUIRED_COLUMNS,
        focus.focus_row_to_record,
        columnar=focus_batch_to_json,
        quantity_columns={
            "pricing_quantity": "PricingQuantity",
            "consumed_quantity": "ConsumedQuantity",
        },
    ),
    BillFormat(
        "aws-cur",
        "AWS Cost and Usage Report (legacy)",
        aws_cur.LEGACY.required_columns(),
        aws_cur.LEGACY.to_record,
    ),
    BillFormat(
        "aws-cur2",
        "AWS CUR 2.0",
        aws_cur.CUR2.required_columns(),
        aws_cur.CUR2.to_record,
    ),
)


def detect(header: list[str]) -> BillFormat | None:
    """The first format the header fits, or None."""
    return next((f for f in FORMATS if not f.missing(header)), None)


def by_name(name: str) -> BillFormat | None:
    """The format called ``name`` (as ``--format`` takes it)."""
    return next((f for f in FORMATS if f.name == name), None)
