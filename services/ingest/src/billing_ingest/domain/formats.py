"""The bill formats ingest reads, detected from a file's header (pure).

Each format names the columns it cannot do without and maps one row to a usage record. The
first format whose required columns are all in the header (and, for a format that has
markers, at least one of its markers; or, for a format with a header rule, whose rule fits)
is the file's format; ``--format`` overrides the detection (and the header must still have
the required columns). FOCUS versions are told by what each version requires, newest first,
unless the file's first row names its version; Azure's agreements by the columns only one of
them has. docs/ingest.md lists what each format needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from billing_ingest.domain import aws_cur, azure, focus, gcp_billing, openstack
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


class HeaderRule(Protocol):
    """How a format whose columns are not fixed names tells its header."""

    def missing(self, header: list[str]) -> list[str]:
        """Required columns the header lacks."""
        ...

    def fits(self, header: list[str]) -> bool:
        """Whether the header is this format's."""
        ...


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
    one_of: tuple[tuple[str, ...], ...] = ()
    """Groups of columns of which the header needs at least one each (a column's spellings)."""
    markers: tuple[str, ...] = ()
    """For detection only: when given, the header must also have one of these."""
    header_rule: HeaderRule | None = None
    """A format's own rule for its header (instead of the columns and markers above)."""
    currency_column: str | None = None
    """For a format whose data may name no currency: the column that names it (when the
    header lacks it, the load gives every row the currency from outside the file)."""
    provider: str | None = None
    """The provider the format's records name (where the catalog is asked about it)."""

    def missing(self, header: list[str]) -> list[str]:
        """Required columns the header lacks (a group as ``A or B``)."""
        if self.header_rule is not None:
            return self.header_rule.missing(header)
        present = set(header)
        lacking = [c for c in self.required_columns if c not in present]
        lacking += [" or ".join(g) for g in self.one_of if not present.intersection(g)]
        return lacking

    def fits(self, header: list[str]) -> bool:
        """Whether detection picks this format for the header."""
        if self.header_rule is not None:
            return self.header_rule.fits(header)
        if self.missing(header):
            return False
        return not self.markers or not set(self.markers).isdisjoint(header)


_FOCUS_QUANTITIES = {"pricing_quantity": "PricingQuantity", "consumed_quantity": "ConsumedQuantity"}

FORMATS: tuple[BillFormat, ...] = (
    # newest FOCUS first: a 1.2 file also has the 1.1 columns
    *(
        BillFormat(
            f"focus-{rule.version}",
            f"FOCUS {rule.version}",
            focus.REQUIRED_COLUMNS,
            focus.focus_row_to_record,
            columnar=focus_batch_to_json,
            quantity_columns=_FOCUS_QUANTITIES,
            header_rule=rule,
        )
        for rule in (focus.V1_2, focus.V1_1, focus.V1_0)  # newest first
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
    BillFormat(
        "gcp",
        "Google Cloud billing export (BigQuery standard schema; CSV or JSON lines)",
        gcp_billing.REQUIRED_COLUMNS,
        gcp_billing.gcp_row_to_record,
    ),
    BillFormat(
        "azure-ea",
        "Azure cost details, Enterprise Agreement or pay-as-you-go",
        (),
        azure.EA.to_record,
        header_rule=azure.EA,
    ),
    BillFormat(
        "azure-mca",
        "Azure cost details, Microsoft Customer Agreement",
        (),
        azure.MCA.to_record,
        header_rule=azure.MCA,
    ),
    BillFormat(
        "openstack",
        "OpenStack rated usage (CloudKitty: flat rows, dataframes, API output)",
        (),
        openstack.openstack_row_to_record,
        one_of=openstack.REQUIRED_ONE_OF,
        currency_column=openstack.CURRENCY[0],
        provider=openstack.PROVIDER,
    ),
)

JSON_DECIMAL_FIELDS = (*gcp_billing.DECIMAL_FIELDS, *openstack.DECIMAL_FIELDS)
"""Numeric fields of JSON-lines bills to read as exact decimals (``[]``: inside an array)."""

ALIASES = {"focus": "focus-1.0"}
"""Older names ``--format`` still takes: bills loaded before FOCUS versions were told apart
were recorded as ``focus`` and were FOCUS 1.0."""


def detect(header: list[str], first_row: Row | None = None) -> BillFormat | None:
    """The first format the header fits, or None. A FOCUS file whose first row carries its
    own version marker (:func:`~billing_ingest.domain.focus.marked_version`) is that version."""
    found = next((f for f in FORMATS if f.fits(header)), None)
    if found is None or found.header_rule not in _FOCUS_RULES or first_row is None:
        return found
    marked = focus.marked_version(first_row)
    return found if marked is None else by_name(f"focus-{marked}") or found


_FOCUS_RULES = (focus.V1_2, focus.V1_1, focus.V1_0)


def by_name(name: str) -> BillFormat | None:
    """The format called ``name`` (as ``--format`` takes it, aliases included)."""
    name = ALIASES.get(name, name)
    return next((f for f in FORMATS if f.name == name), None)
