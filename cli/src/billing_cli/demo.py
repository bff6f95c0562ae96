"""``billing demo report``: what the demo produced, invoices with their PDFs, e-invoices,
FOCUS datasets and emails."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from billing_catalog.models import EInvoiceFormat
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.einvoice import FACTURX_FILENAME
from billing_invoicing.adapters.stored_rows import invoice_row_of
from billing_invoicing.bootstrap import CliContext, cli_context
from billing_invoicing.domain.access import Scope
from billing_invoicing.service.einvoices import EInvoiceUnavailableError, einvoice_file
from billing_invoicing.service.focus_export import FOCUS_VERSION, focus_file_name, write_focus_csv
from billing_runtime import tables
from billing_schemas.money import format_amount, from_fixed_units

console = Console()
OPERATOR = Scope(customer_id=None)
demo_app = typer.Typer(help="The bundled demo.", no_args_is_help=True)


@dataclass(frozen=True)
class Mail:
    """One stored email: its file, recipients and subject."""

    path: Path
    to: str
    subject: str


def read_mailbox(directory: Path) -> list[Mail]:
    """Every ``.eml`` file of the SMTP sink, oldest first."""
    mails = []
    for path in sorted(directory.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        mails.append(Mail(path, str(message.get("To", "")), str(message.get("Subject", ""))))
    return mails


async def _write_einvoices(ctx: CliContext, doc: dict[str, Any], out: Path) -> list[str]:
    """The e-invoices the customer receives (catalog ``einvoice``, docs/einvoice.md), written
    beside the PDF; one report line each. A Factur-X customer's PDF above is the Factur-X."""
    customer = await ctx.ports.catalog.customer(str(doc["customer_id"]))
    lines = []
    for fmt in customer.einvoice if customer else []:
        if fmt is EInvoiceFormat.FACTURX:
            lines.append(f"Factur-X  the PDF above (PDF/A-3 carrying {FACTURX_FILENAME})")
            continue
        try:
            found = await einvoice_file(ctx.einvoices, OPERATOR, str(doc["number"]), fmt)
        except EInvoiceUnavailableError as exc:
            lines.append(f"{fmt.value}  not available: {exc}")
            continue
        path = out / found.name
        path.write_bytes(found.content)
        lines.append(f"{fmt.value}  {path}")
    return lines


async def _write_focus(ctx: CliContext, doc: dict[str, Any], out: Path) -> str:
    """The invoice's FOCUS 1.2 dataset (what ``billing invoices focus`` writes), beside the
    PDF; its report line."""
    stored = invoice_row_of(doc)
    path = out / focus_file_name(stored)
    buffer = io.StringIO()
    rows = await write_focus_csv(stored, ctx.ports.invoices.charges_of(stored.invoice_id), buffer)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return f"FOCUS {FOCUS_VERSION}  {path}  ({rows} rows)"


def _money(doc: dict[str, Any], field: str) -> str:
    """A figure of the invoice's document (``credit_applied``, ``outstanding``), formatted;
    blank on a draft or where the document has none."""
    value = (doc.get("document") or {}).get(field)
    if doc.get("total_units") is None or value is None:
        return ""
    return format_amount(Decimal(str(value)), str(doc.get("currency") or ""))


@demo_app.command("report")
def report(
    period: Annotated[
        list[str] | None,
        typer.Option(help="Billing period, YYYY-MM; repeat for several (default 2024-09)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write the PDFs.")] = Path("var/demo"),
    mail_dir: Annotated[Path, typer.Option(help="The SMTP sink's folder.")] = Path("var/mail"),
) -> None:
    """Print each period's invoices (total, credit applied, what it asked at issue) with the
    paths of their PDFs, of the e-invoices their customers receive, of their FOCUS datasets,
    and of the emails sent."""
    periods = period or ["2024-09"]

    async def run(one: str) -> list[tuple[dict[str, Any], Path | None, list[str]]]:
        rows = []
        async with cli_context() as ctx:
            store = InvoicePdfStore(ctx.db)
            for doc in await ctx.ports.invoices.list_invoices(period=one):
                path = None
                einvoices: list[str] = []
                if doc.get("pdf_file_id"):
                    path = out / f"{doc['number']}.pdf"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(await store.load(str(doc["pdf_file_id"])))
                    einvoices = await _write_einvoices(ctx, doc, out)
                    einvoices.append(await _write_focus(ctx, doc, out))
                rows.append((doc, path, einvoices))
        return rows

    mails = read_mailbox(mail_dir) if mail_dir.is_dir() else []
    for one in periods:
        _print_period(one, asyncio.run(run(one)), mails)
    console.print(f"{len(mails)} emails in {mail_dir}/")


def _print_period(
    period: str, rows: list[tuple[dict[str, Any], Path | None, list[str]]], mails: list[Mail]
) -> None:
    """One period's table of invoices and the files written for them."""
    table = Table(
        tables.key("number"),
        tables.text("customer"),
        tables.amount("total"),
        tables.amount("credit applied"),
        tables.amount("to pay at issue"),
        tables.key("status"),
        tables.key("due"),
        title=f"Invoices {period}",
    )
    files: list[str] = []
    for doc, pdf, einvoices in rows:
        number = str(doc.get("number") or "-")
        currency = str(doc.get("currency") or "")
        units = doc.get("total_units")
        total = "(draft)" if units is None else format_amount(from_fixed_units(units), currency)
        table.add_row(
            number,
            str(doc["customer_id"]),
            total,
            _money(doc, "credit_applied"),
            _money(doc, "outstanding"),
            str(doc["status"]),
            str(doc.get("due_date")),
        )
        if pdf is not None:
            files.append(f"{number}  PDF    {pdf}")
        files.extend(f"{number}  {line}" for line in einvoices)
        files.extend(
            f"{number}  email  {m.path}  to {m.to}"
            for m in mails
            if number != "-" and number in m.subject
        )
    console.print(tables.fit(table, console.width))
    for line in files:
        console.print(line, soft_wrap=True, highlight=False)
    console.print(f"{len(rows)} invoices for {period}")
