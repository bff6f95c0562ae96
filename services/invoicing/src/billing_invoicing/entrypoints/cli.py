"""``billing catalog`` and ``billing invoices``: the operator's side of invoicing."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from opentelemetry import trace
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from billing_invoicing.adapters.catalog_repo import ApplyResult
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.invoice_repo import INVOICES
from billing_invoicing.bootstrap import cli_context
from billing_invoicing.service.generate_invoices import Outcome, outcomes, preview, request_close
from billing_runtime.tracing import TRACER_NAME, configure_tracing
from billing_schemas.catalog import Catalog
from billing_schemas.events import PERIOD_PATTERN, today_utc
from billing_schemas.money import format_amount, from_fixed_units

console = Console()
err = Console(stderr=True)
catalog_app = typer.Typer(help="Customers, accounts, contacts, price lists.", no_args_is_help=True)
invoices_app = typer.Typer(help="Generate, list and download invoices.", no_args_is_help=True)


def load_catalog_file(path: Path) -> Catalog:
    """Parse and validate a catalog YAML file; errors name the entry and field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        msg = f"{path}: cannot read YAML: {exc}"
        raise ValueError(msg) from None
    try:
        return Catalog.model_validate(data or {})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = _describe_location(data, error["loc"])
            problems.append(f"  {where}: {error['msg']}")
        msg = f"{path}: the catalog is not valid:\n" + "\n".join(problems)
        raise ValueError(msg) from None


def _describe_location(data: Any, loc: tuple[int | str, ...]) -> str:
    """``customers[acme].contacts[0].email`` rather than ``customers.0.contacts.0.email``."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and key < len(node) else None
            label = node.get("id") if isinstance(node, dict) else None
            index = f"[{label or key}]"
            if parts:
                parts[-1] += index
            else:
                parts.append(index)
        else:
            node = node.get(key) if isinstance(node, dict) else None
            parts.append(key)
    return ".".join(parts) or "(top level)"


@catalog_app.command("apply")
def apply_catalog(
    file: Annotated[Path, typer.Argument(help="Catalog YAML file (see docs/catalog.md).")],
) -> None:
    """Apply a catalog file (idempotent: applying it twice changes nothing)."""
    try:
        catalog = load_catalog_file(file)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    async def run() -> ApplyResult:
        async with cli_context() as ctx:
            return await ctx.ports.catalog.apply(catalog)

    try:
        result = asyncio.run(run())
    except ValueError as exc:  # a price-list version in effect would change
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"catalog applied: {result.invoicing_entities} invoicing entities, "
        f"{result.customers} customers, {result.accounts} cloud accounts, "
        f"{result.price_lists} price lists, {result.fx_rates} FX rates, "
        f"{result.tax_rates} tax rates, {result.plans} plans"
    )


@invoices_app.command("generate")
def generate(
    period: Annotated[str, typer.Option(help="Billing period, YYYY-MM.")],
    customer: Annotated[str | None, typer.Option(help="Only this customer.")] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Show what would be issued; issue nothing.")
    ] = False,
    wait_seconds: Annotated[
        float, typer.Option(help="How long to wait for the invoicing service to finish.")
    ] = 300.0,
) -> None:
    """Close a period: finalize, number and render its invoices (running it twice is a no-op).

    The close is carried out by the running invoicing service, after every charge rated before
    this command; this command waits for it and prints the result.
    """
    if not re.match(PERIOD_PATTERN, period):
        err.print(f"[red]error:[/red] --period {period!r} is not YYYY-MM")
        raise typer.Exit(2)

    async def run() -> list[Outcome]:
        async with cli_context() as ctx:
            if dry_run:
                return await preview(ctx.ports, period=period, customer_id=customer)
            configure_tracing("cli")
            with trace.get_tracer(TRACER_NAME).start_as_current_span(f"close {period}"):
                closing = await request_close(
                    ctx.ports,
                    period=period,
                    customer_id=customer,
                    issue_date=today_utc(),
                    correlation_id=f"close:{period}:{uuid.uuid4().hex[:12]}",
                )
            deadline = time.monotonic() + wait_seconds
            with console.status(f"closing {len(closing)} invoices of {period}..."):
                while True:
                    docs = await ctx.ports.invoices.list_invoices(
                        period=period, customer_id=customer
                    )
                    waiting = [
                        d["_id"]
                        for d in docs
                        if d["_id"] in closing and d.get("published_at") is None
                    ]
                    if not waiting:
                        break
                    if time.monotonic() > deadline:
                        msg = (
                            f"the invoicing service has not finished {', '.join(waiting)} "
                            f"after {wait_seconds:.0f} s: is it running? (scripts/services.sh "
                            "status; var/log/invoicing.log)"
                        )
                        raise TimeoutError(msg)
                    await asyncio.sleep(0.3)
            return [
                replace(o, action="finalized" if o.invoice_id in closing else "already finalized")
                for o in await outcomes(ctx.ports, period=period, customer_id=customer)
            ]

    try:
        result = asyncio.run(run())
    except TimeoutError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if not result:
        console.print(f"no invoices for {period}: no rated usage in that period")
        return
    table = Table("customer", "number", "total", "status", "action", title=f"Period {period}")
    for o in result:
        total = format_amount(o.total, o.currency) if o.currency else "-"
        table.add_row(o.customer_id, o.number or "-", total, o.status, o.action)
    console.print(table)


async def _invoice_rows(period: str | None, customer: str | None) -> list[dict[str, Any]]:
    async with cli_context() as ctx:
        return await ctx.ports.invoices.list_invoices(period=period, customer_id=customer)


@invoices_app.command("list")
def list_invoices(
    period: Annotated[str | None, typer.Option(help="Only this period, YYYY-MM.")] = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List invoices (drafts and finalized) with their totals."""
    rows = asyncio.run(_invoice_rows(period, customer))
    out = [invoice_row(doc) for doc in rows]
    if as_json:
        print(json.dumps(out, indent=2))
        return
    table = Table("number", "customer", "period", "total", "status", "issued", "due")
    for row in out:
        amount = row["total"] or row["draft_total"]
        currency = row["currency"]
        total = format_amount(Decimal(amount), currency) if amount and currency else "-"
        table.add_row(
            row["number"] or "-",
            row["customer_id"],
            row["period"],
            total if row["total"] else f"{total} (so far)",
            row["status"],
            row["issue_date"] or "-",
            row["due_date"] or "-",
        )
    console.print(table)


def invoice_row(doc: dict[str, Any]) -> dict[str, str | None]:
    """An invoice document as a flat row of strings (amounts as decimal strings)."""
    total = doc.get("total_units")
    draft = sum(line["price_units"] for line in doc.get("draft_lines", []))
    return {
        "invoice_id": doc["_id"],
        "number": doc.get("number"),
        "customer_id": doc["customer_id"],
        "period": doc["period"],
        "status": doc["status"],
        "currency": doc.get("currency"),
        "total": None if total is None else format(from_fixed_units(total), "f"),
        "draft_total": format(from_fixed_units(draft), "f") if total is None else None,
        "issue_date": doc.get("issue_date"),
        "due_date": doc.get("due_date"),
        "pdf_file_id": doc.get("pdf_file_id"),
    }


@invoices_app.command("pdf")
def download_pdf(
    number: Annotated[str, typer.Argument(help="Invoice number.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
) -> None:
    """Write a finalized invoice's PDF to a file (default: ``<number>.pdf``)."""

    async def run() -> bytes | None:
        async with cli_context() as ctx:
            doc = await ctx.db[INVOICES].find_one({"number": number})
            if doc is None or not doc.get("pdf_file_id"):
                return None
            return await InvoicePdfStore(ctx.db).load(str(doc["pdf_file_id"]))

    pdf = asyncio.run(run())
    if pdf is None:
        err.print(f"[red]error:[/red] no finalized invoice numbered {number!r}")
        raise typer.Exit(1)
    target = output or Path(f"{number}.pdf")
    target.write_bytes(pdf)
    console.print(f"wrote {target} ({len(pdf):,} bytes)")
