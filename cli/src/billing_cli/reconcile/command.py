"""``billing reconcile --period P [--customer C] [--json]``: does the period add up?"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.table import Table

from billing_cli.reconcile.domain import RECORDS_SHOWN, Reconciliation
from billing_cli.reconcile.service import reconcile_period, write_gauges
from billing_runtime import tables
from billing_runtime.kafka import EventPublisher, ensure_topics
from billing_runtime.settings import ServiceSettings
from billing_schemas.channels import PERIOD_RECONCILED

console = Console()
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


async def _run(period: str, customer: str | None) -> Reconciliation:
    settings = ServiceSettings()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    publisher = EventPublisher(settings.kafka_bootstrap_servers, "billing-reconcile")
    try:
        # the verdict's topic, in case no notify has made it yet
        verdicts = PERIOD_RECONCILED.name(settings.topic_namespace)
        await ensure_topics(settings.kafka_bootstrap_servers, [verdicts])
        await publisher.start()
        return await reconcile_period(
            client[settings.mongodb_database],
            settings.kafka_bootstrap_servers,
            settings.topic_namespace,
            period,
            customer,
            publisher=publisher,
        )
    finally:
        await publisher.stop()
        await client.close()


def as_json(result: Reconciliation) -> dict[str, Any]:
    """The reconciliation as JSON (amounts as decimal strings)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if value is None or isinstance(value, (bool, int, str)):
            return value
        return str(value)  # Decimal, enums

    return {
        "period": result.period,
        "customer_id": result.customer_id,
        "reconciles": result.reconciles,
        "unexplained": len(result.unexplained),
        "counts": dict(result.counts),
        "accounts": plain(list(result.accounts)),
        "customers": plain(list(result.customers)),
        "differences": [
            plain(d) | {"explained": d.explained, "record_count": len(d.records)}
            for d in result.differences
        ],
    }


def show(result: Reconciliation) -> None:
    """The reconciliation as tables for people."""
    scope = result.period + (f", customer {result.customer_id}" if result.customer_id else "")
    console.print(f"[bold]Reconciliation of {scope}[/bold]")
    console.print(", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in result.counts.items()))
    key, figure = tables.key, tables.amount
    accounts = Table(
        key("bill"), key("provider"), key("account"), key("currency"), figure("lines"),
        figure("billed (file)"), figure("published"), figure("charged"),
        figure("stored by invoicing"), title="Per bill and provider account: billed cost",
    )  # fmt: skip
    for a in result.accounts:
        accounts.add_row(
            a.bill_id, a.provider, a.billing_account_id, a.currency, f"{a.lines:,}",
            f"{a.billed:f}", f"{a.published:f}", f"{a.charged:f}", f"{a.stored:f}",
        )  # fmt: skip
    console.print(tables.fit(accounts, console.width))
    customers = Table(
        key("customer"), key("currency"), figure("charges"), figure("rated prices"),
        figure("on its invoice"), figure("late (next)"),
        title="Per customer: rated prices (corrections included), exact",
    )  # fmt: skip
    for c in result.customers:
        customers.add_row(
            c.customer_id, c.currency, f"{c.charges:,}", f"{c.rated:f}", f"{c.invoiced:f}",
            f"{c.late:f}",
        )  # fmt: skip
    console.print(tables.fit(customers, console.width))
    if result.differences:
        console.print(tables.fit(_differences(result), console.width))
    if result.reconciles:
        console.print(
            f"[green]{scope} reconciles[/green]: {len(result.differences)} differences, "
            "each explained"
        )
    else:
        # one line each, never wrapped: what an operator (or a script) greps for
        for d in result.unexplained:
            console.print(
                f"unexplained: {d.check.value} {d.subject}: {d.what}: "
                f"{len(d.records):,} records: {' '.join(d.records)}",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
        console.print(
            f"[red]{scope} does not reconcile[/red]: {len(result.unexplained)} unexplained "
            f"differences (of {len(result.differences)})"
        )


def _differences(result: Reconciliation) -> Table:
    """The differences found, each with its cause (or "unexplained")."""
    differences = Table(
        tables.key("check"), tables.key("subject"), tables.amount("difference"),
        tables.text("records"), tables.text("cause"), title="Differences",
    )  # fmt: skip
    for d in result.differences:
        shown = ", ".join(d.records[:RECORDS_SHOWN])
        if len(d.records) > RECORDS_SHOWN:
            shown += f" ... ({len(d.records):,} in all)"
        cause = d.explanation.value if d.explanation else "[red]unexplained[/red]"
        if d.detail:
            cause += f": {d.detail[:200]}"
        differences.add_row(d.check.value, d.subject, d.what, shown, cause)
    return differences


def reconcile(
    period: Annotated[str, typer.Option(help="The billing period, YYYY-MM.")],
    customer: Annotated[str | None, typer.Option(help="Only this customer's charges.")] = None,
    as_json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    metrics_file: Annotated[
        Path | None,
        typer.Option(help="Also write the verdict as Prometheus gauges to this file."),
    ] = None,
) -> None:
    """Show that every bill line and usage event of the period ended up once on an invoice.

    Compares what ingest, rating and invoicing stored and published, record by record; names
    each difference and its cause. Exit status 1 when a difference is unexplained.
    """
    if not PERIOD.match(period):
        msg = f"{period!r} is not a period (YYYY-MM)"
        raise typer.BadParameter(msg)
    result = asyncio.run(_run(period, customer))
    if metrics_file is not None:
        write_gauges(result, metrics_file)
    if as_json_output:
        print(json.dumps(as_json(result), indent=2))
    else:
        show(result)
    if not result.reconciles:
        raise typer.Exit(1)
