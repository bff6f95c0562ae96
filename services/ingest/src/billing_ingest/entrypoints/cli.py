"""``billing ingest`` and ``billing bills``: load bill files, look at what was loaded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from opentelemetry import trace
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from billing_ingest.bootstrap import load_context, registry_context
from billing_ingest.domain.formats import FORMATS
from billing_ingest.service.load_bill import LoadResult, NotABillError, load_bill
from billing_ingest.settings import IngestSettings
from billing_runtime import tables
from billing_runtime.tracing import TRACER_NAME, configure_tracing
from billing_schemas.events import RejectedRow

console = Console()
err = Console(stderr=True)
FORMAT_NAMES = ", ".join(f.name for f in FORMATS)
bills_app = typer.Typer(help="Bills loaded so far.", no_args_is_help=True)


async def _ingest(
    path: Path, fmt: str | None, *, quiet: bool, currency: str | None = None
) -> LoadResult:
    settings = IngestSettings()
    configure_tracing("cli")
    async with load_context(settings) as ctx:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} rows"),
            TimeElapsedColumn(),
            console=err,
            disable=quiet,
            transient=True,
        ) as progress:
            task = progress.add_task(f"loading {path.name}", total=None)
            with trace.get_tracer(TRACER_NAME).start_as_current_span(f"ingest {path.name}"):
                return await load_bill(
                    path,
                    publisher=ctx.ports.publisher,
                    registry=ctx.ports.registry,
                    fmt=fmt,
                    batch_rows=settings.publish_batch_rows,
                    on_progress=lambda n: progress.update(task, completed=n),
                    currency=currency,
                    catalog=ctx.ports.catalog,
                )


def ingest(
    file: Annotated[
        Path,
        typer.Argument(
            help="Bill file (FOCUS, AWS CUR, Google Cloud, Azure, OpenStack): CSV, JSON lines "
            "(.gz too), Parquet or CloudKitty's API output; see docs/ingest.md."
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help=f"{FORMAT_NAMES}; detected from the header."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    currency: Annotated[
        str | None,
        typer.Option(
            "--currency",
            help="ISO 4217 currency of data that names none (CloudKitty's); default: the one "
            "currency the catalog's OpenStack customers are invoiced in.",
        ),
    ] = None,
) -> None:
    """Load a provider bill: publish its usage, reject bad rows with their reasons."""
    try:
        result = asyncio.run(_ingest(file, fmt, quiet=as_json, currency=currency))
    except NotABillError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    summary = result.summary
    if as_json:
        payload = summary.model_dump(mode="json") | {"already_loaded": result.already_loaded}
        print(json.dumps(payload, indent=2))
        return
    note = " (already loaded: nothing published again)" if result.already_loaded else ""
    console.print(f"bill [bold]{summary.bill_id}[/bold] {summary.status}{note}")
    totals = ", ".join(f"{a:f} {c}" for c, a in sorted(summary.billed_cost_totals.items()))
    console.print(
        f"  rows read {summary.rows_read:,}, accepted {summary.rows_accepted:,}, "
        f"rejected {summary.rows_rejected:,}; billed cost {totals or '0'}; "
        f"periods {', '.join(summary.billing_periods) or '-'}"
    )
    if summary.restates:
        console.print(
            f"  version {summary.version}, restates {summary.restates}: "
            f"{summary.rows_unchanged:,} lines unchanged (not sent again), "
            f"{summary.corrections:,} dropped lines reversed"
        )
    elif summary.rows_unchanged:
        console.print(f"  {summary.rows_unchanged:,} lines were already published: not sent again")
    if summary.rows_rejected:
        console.print(f"  see the rejected rows: billing bills show {summary.bill_id}")


async def _bills(bill_id: str | None) -> tuple[list[dict[str, Any]], list[RejectedRow]]:
    """All recent bills, or one bill and its rejected rows."""
    settings = IngestSettings()
    async with registry_context(settings) as registry:
        if bill_id is None:
            return await registry.list_bills(), []
        bill = await registry.bill(bill_id)
        if bill is None:
            return [], []
        return [bill], await registry.rejections(bill_id)


@bills_app.command("list")
def list_bills() -> None:
    """List loaded bills, newest first."""
    bills, _ = asyncio.run(_bills(None))
    table = Table(
        tables.key("bill"),
        tables.text("file"),
        tables.key("format"),
        tables.key("version"),
        tables.key("status"),
        tables.amount("read"),
        tables.amount("accepted"),
        tables.amount("rejected"),
    )
    for bill in bills:
        table.add_row(
            str(bill["_id"]),
            str(bill.get("file_name", "")),
            str(bill.get("format", "")),
            str(bill.get("version", "")),
            str(bill.get("status", "")),
            str(bill.get("rows_read", "")),
            str(bill.get("rows_accepted", "")),
            str(bill.get("rows_rejected", "")),
        )
    console.print(tables.fit(table, console.width))


@bills_app.command("show")
def show_bill(
    bill_id: Annotated[str, typer.Argument(help="Bill id, as printed by billing ingest.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show one bill's figures and its rejected rows."""
    bills, rejections = asyncio.run(_bills(bill_id))
    if not bills:
        err.print(f"[red]error:[/red] no bill {bill_id!r}")
        raise typer.Exit(1)
    bill = bills[0]
    rows = [r.model_dump(mode="json") for r in rejections]
    if as_json:
        print(json.dumps({"bill": bill.get("summary"), "rejected_rows": rows}, indent=2))
        return
    console.print(json.dumps(bill.get("summary"), indent=2))
    table = Table(tables.key("row"), tables.key("column"), tables.text("reason"))
    for r in rows:
        table.add_row(str(r["row"]), str(r["column"] or ""), str(r["reason"]))
    console.print(tables.fit(table, console.width))
