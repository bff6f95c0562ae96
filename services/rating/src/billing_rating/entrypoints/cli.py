"""``billing rate``: re-rate a period after a price-list change; publish only the differences."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from billing_rating.bootstrap import rerate_context
from billing_rating.service.rerate_period import RerateSummary, rerate_period
from billing_runtime import tables
from billing_runtime.audit import cli_actor
from billing_schemas.events import PERIOD_PATTERN, AuditEntry

console = Console()
err = Console(stderr=True)
SHOWN = 20
"""Corrections listed one by one; more are counted."""


def rerated(summary: RerateSummary, actor: str) -> AuditEntry:
    """``charges.rerated``: the corrections a re-rating published (audit trail)."""
    who = summary.customer_id or "all customers"
    differences = sorted(summary.differences.items())
    return AuditEntry(
        action="charges.rerated",
        actor=actor,
        subject=f"period:{summary.period}",
        customer_id=summary.customer_id,
        summary=(
            f"re-rated {summary.period} ({who}): {len(summary.corrections)} corrections, "
            + ", ".join(
                f"{amount:f} {currency}" for currency, amount in sorted(summary.differences.items())
            )
        ),
        after={
            "period": summary.period,
            "customer_id": summary.customer_id,
            "records": summary.records,
            "corrections": len(summary.corrections),
            "differences": {c: str(a) for c, a in differences},
            "charge_ids": sorted(c.charge_id for c in summary.corrections)[:1000],
        },
    )


def _progress(step: str, done: int, total: int) -> None:
    err.print(f"  {step} {done:,} of {total:,}", highlight=False)


def rate(
    period: Annotated[str, typer.Option(help="Billing period to re-rate, YYYY-MM.")],
    customer: Annotated[str | None, typer.Option(help="Only this customer.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Show the corrections; publish nothing.")] = False,
) -> None:
    """Re-rate a period with the price lists in effect now; publish only the differences.

    Each record whose price changed gets one correction charge (the difference, no cost) with a
    deterministic id, so running it twice publishes nothing new. A correction for a period
    whose invoice is finalized goes onto the customer's next open invoice.
    """
    if not re.match(PERIOD_PATTERN, period):
        err.print(f"[red]error:[/red] --period {period!r} is not YYYY-MM")
        raise typer.Exit(2)

    async def run() -> RerateSummary:
        async with rerate_context() as ctx:
            summary = await rerate_period(
                period,
                customer_id=customer,
                catalog=ctx.catalog,
                kept=ctx.kept,
                publisher=None if dry_run else ctx.publisher,
                correlation_id=f"rerate:{period}:{uuid.uuid4().hex[:12]}",
                on_progress=_progress,
            )
            if summary.published and summary.corrections:
                await ctx.audit.record(rerated(summary, cli_actor()))
            return summary

    summary = asyncio.run(run())
    who = f"customer {customer}" if customer else "all customers"
    verb = "would publish" if dry_run else "published"
    console.print(
        f"re-rated {period} ({who}): {summary.records:,} records, "
        f"{len(summary.corrections):,} corrections {verb}",
        highlight=False,
    )
    for currency, amount in sorted(summary.differences.items()):
        console.print(f"  difference {format(amount, 'f')} {currency}", highlight=False)
    if summary.corrections:
        _print_corrections(summary)
    if summary.skipped:
        err.print(f"[yellow]{len(summary.skipped):,} records not re-rated:[/yellow]")
        for reason in summary.skipped[:SHOWN]:
            err.print(f"  {reason}", highlight=False)
        sys.stderr.flush()
        raise typer.Exit(1)


def _print_corrections(summary: RerateSummary) -> None:
    """The first corrections of a re-rating, as a table (ids and amounts whole at any width)."""
    table = Table(
        tables.key("correction"),
        tables.key("customer"),
        tables.amount("difference"),
        tables.key("price list"),
        tables.text("rule"),
    )
    for c in summary.corrections[:SHOWN]:
        table.add_row(
            c.charge_id,
            c.customer_id,
            f"{c.price:f} {c.currency}",
            f"{c.price_list_id} v{c.price_list_version}",
            c.rule,
        )
    console.print(tables.fit(table, console.width))
    if len(summary.corrections) > SHOWN:
        console.print(f"  ... and {len(summary.corrections) - SHOWN:,} more", highlight=False)
