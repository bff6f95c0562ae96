"""The operators' report of a processed bill: counts, totals per currency, first rejected rows,
and whether each of its periods reconciles (the last ``billing reconcile`` verdict, which notify
keeps from ``billing.period.reconciled.v1``: the newest of each period, whatever the order the
verdicts arrive in).

Pure. Operators are a fixed list of addresses from the settings; the report is in English.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from billing_notify.domain.messages import MessageKind, message_id_for
from billing_schemas.events import BillSummary, ReconcileVerdict, RejectedRow


@dataclass(frozen=True)
class RejectedRowLine:
    """One rejected row as the report lists it."""

    file: str
    row: str
    column: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    """The last reconciliation of a period (``billing reconcile``)."""

    period: str
    reconciles: bool
    unexplained: int
    checked_at: datetime


def verdict_of(published: ReconcileVerdict) -> Verdict:
    """The verdict as notify keeps it: its time to the millisecond, as a BSON date holds it, so
    that a verdict read back compares equal to the same verdict delivered again."""
    at = published.checked_at
    return Verdict(
        period=published.period,
        reconciles=published.reconciles,
        unexplained=published.unexplained,
        checked_at=at.replace(microsecond=at.microsecond // 1000 * 1000),
    )


def supersedes(verdict: Verdict, kept: Verdict | None) -> bool:
    """Whether ``verdict`` replaces the one kept for its period: only a later check does.

    An older verdict delivered late, or the same one delivered again, changes nothing, so
    keeping verdicts is idempotent and independent of their order of arrival.
    """
    return kept is None or verdict.checked_at > kept.checked_at


def newest_per_period(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """The latest verdict of each period among ``verdicts`` (periods in first-seen order)."""
    newest: dict[str, Verdict] = {}
    for verdict in verdicts:
        if supersedes(verdict, newest.get(verdict.period)):
            newest[verdict.period] = verdict
    return list(newest.values())


def reconciliation_line(
    period: str, verdict: Verdict | None, processed_at: datetime | None = None
) -> str:
    """Whether the period reconciles, as its last ``billing reconcile`` found.

    A verdict reached before this bill was processed does not cover the bill: it is said so,
    with the command that would.
    """
    command = f"billing reconcile --period {period}"
    if verdict is None:
        return f"{period}: not reconciled yet ({command})"
    when = verdict.checked_at.strftime("%Y-%m-%d %H:%M UTC")
    if verdict.reconciles:
        state = "reconciles: no unexplained difference"
    else:
        state = f"does NOT reconcile: {verdict.unexplained:,} unexplained differences"
    line = f"{period}: {state} (checked {when}"
    if processed_at is not None and verdict.checked_at < processed_at:
        return f"{line}, before this bill: run {command} again)"
    return f"{line})"


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
    reconciliation: list[str]


def bill_message_id(summary: BillSummary) -> str:
    """One report per bill."""
    return message_id_for(MessageKind.BILL_PROCESSED, summary.bill_id)


def bill_report_view(
    summary: BillSummary,
    rejected: Sequence[RejectedRow],
    *,
    limit: int,
    verdicts: Mapping[str, Verdict] | None = None,
    processed_at: datetime | None = None,
) -> BillReportView:
    """The bill's figures for operators; at most ``limit`` rejected rows listed; one line per
    billing period saying whether it reconciles (``verdicts``: the last one of each period;
    see :func:`reconciliation_line`).

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
        reconciliation=[
            reconciliation_line(p, (verdicts or {}).get(p), processed_at)
            for p in summary.billing_periods
        ],
    )
