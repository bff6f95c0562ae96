"""``billing catalog`` and ``billing invoices``: the operator's side of invoicing."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from billing_invoicing.adapters.catalog_repo import ApplyResult
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.invoice_repo import INVOICES
from billing_invoicing.bootstrap import cli_context
from billing_invoicing.service.generate_invoices import Outcome, generate_invoices
from billing_schemas.catalog import Catalog
from billing_schemas.events import PERIOD_PATTERN
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
        if isinstance(key, int) and isinstance(node, list) and key < len(node):
            node = node[key]
            label = node.get("id") if isinstance(node, dict) else None
            parts[-1 if parts else 0 : None] = [f"{parts[-1] if parts else ''}[{label or key}]"]
        else:
            node = node.get(key) if isinstance(node, dict) else None
            parts.append(str(key))
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

    result = asyncio.run(run())
    console.print(
        f"catalog applied: {result.invoicing_entities} invoicing entities, "
        f"{result.customers} customers, {result.accounts} cloud accounts"
    )


@invoices_app.command("generate")
def generate(
    period: Annotated[str, typer.Option(help="Billing period, YYYY-MM.")],
    customer: Annotated[str | None, typer.Option(help="Only this customer.")] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Show what would be issued; issue nothing.")
    ] = False,
) -> None:
    """Close a period: finalize, number and render its invoices (running it twice is a no-op)."""
    if not re.match(PERIOD_PATTERN, period):
        err.print(f"[red]error:[/red] --period {period!r} is not YYYY-MM")
        raise typer.Exit(2)

    async def run() -> list[Outcome]:
        async with cli_context() as ctx:
            return await generate_invoices(
                ctx.ports, period=period, customer_id=customer, dry_run=dry_run
            )

    outcomes = asyncio.run(run())
    if not outcomes:
        console.print(f"no invoices for {period}: no rated usage in that period")
        return
    table = Table("customer", "number", "total", "status", "action", title=f"Period {period}")
    for o in outcomes:
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
    out = []
    for doc in rows:
        document = doc.get("document") or {}
        currency = document.get("currency", "")
        total = from_fixed_units(doc["total_units"]) if "total_units" in doc else None
        out.append(
            {
                "invoice_id": doc["_id"],
                "number": doc.get("number"),
                "customer_id": doc.get("customer_id"),
                "period": doc.get("period"),
                "status": doc.get("status"),
                "currency": currency,
                "total": None if total is None else format(total, "f"),
                "issue_date": doc.get("issue_date"),
                "due_date": doc.get("due_date"),
                "pdf_file_id": doc.get("pdf_file_id"),
            }
        )
    if as_json:
        print(json.dumps(out, indent=2, default=str))
        return
    table = Table("number", "customer", "period", "total", "status", "issued", "due")
    for row in out:
        total = (
            format_amount(Decimal(row["total"]), row["currency"])
            if row["total"] is not None and row["currency"]
            else "(draft)"
        )
        table.add_row(
            row["number"] or "-",
            str(row["customer_id"]),
            str(row["period"]),
            total,
            str(row["status"]),
            str(row["issue_date"] or "-"),
            str(row["due_date"] or "-"),
        )
    console.print(table)


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
