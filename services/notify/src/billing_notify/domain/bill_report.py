"""The operators' report of a processed bill: counts, totals per currency, first rejected rows.

Pure. Operators are a fixed list of addresses from the settings; the report is in English.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from billing_notify.domain.messages import MessageKind, message_id_for
from billing_schemas.events import BillSummary, RejectedRow


@dataclass(frozen=True)
class RejectedRowLine:
    """One rejected row as the report lists it."""

    file: str
    row: str
    column: str
    reason: str


@dataclass(frozen=True)
class BillReportView:
    """What the report shows."""

    bill_id: str
    file_name: str
    format: str
    status: str
    periods: str
    rows_read: str
    rows_accepted: str
    rows_rejected: str
    totals: list[tuple[str, str]]
    rejected: list[RejectedRowLine]
    rejected_not_listed: int


def bill_message_id(summary: BillSummary) -> str:
    """One report per bill."""
    return message_id_for(MessageKind.BILL_PROCESSED, summary.bill_id)


def bill_report_view(
    summary: BillSummary, rejected: Sequence[RejectedRow], *, limit: int
) -> BillReportView:
    """The bill's figures for operators; at most ``limit`` rejected rows listed.

    Totals are the bill's billed cost per currency, exactly as ingested (not rounded: this is
    provider cost, not an amount owed), currencies in alphabetical order.
    """
    shown = [
        RejectedRowLine(
            file=row.file or summary.file_name,
            row="-" if row.row is None else str(row.row),
            column=row.column or "-",
            reason=row.reason,
        )
        for row in list(rejected)[:limit]
    ]
    return BillReportView(
        bill_id=summary.bill_id,
        file_name=summary.file_name,
        format=summary.format,
        status=summary.status,
        periods=", ".join(summary.billing_periods) or "-",
        rows_read=f"{summary.rows_read:,}",
        rows_accepted=f"{summary.rows_accepted:,}",
        rows_rejected=f"{summary.rows_rejected:,}",
        totals=[
            (code, f"{amount:,f}") for code, amount in sorted(summary.billed_cost_totals.items())
        ],
        rejected=shown,
        rejected_not_listed=max(summary.rows_rejected - len(shown), 0),
    )
