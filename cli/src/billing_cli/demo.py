"""``billing demo report``: what the demo produced, invoices with their PDFs and emails."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.bootstrap import cli_context
from billing_schemas.money import format_amount, from_fixed_units

console = Console()
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


@demo_app.command("report")
def report(
    period: Annotated[str, typer.Option(help="Billing period, YYYY-MM.")] = "2024-09",
    out: Annotated[Path, typer.Option(help="Where to write the PDFs.")] = Path("var/demo"),
    mail_dir: Annotated[Path, typer.Option(help="The SMTP sink's folder.")] = Path("var/mail"),
) -> None:
    """Print the period's invoices with the paths of their PDFs and of the emails sent."""

    async def run() -> list[tuple[dict[str, Any], Path | None]]:
        rows = []
        async with cli_context() as ctx:
            store = InvoicePdfStore(ctx.db)
            for doc in await ctx.ports.invoices.list_invoices(period=period):
                path = None
                if doc.get("pdf_file_id"):
                    path = out / f"{doc['number']}.pdf"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(await store.load(str(doc["pdf_file_id"])))
                rows.append((doc, path))
        return rows

    rows = asyncio.run(run())
    mails = read_mailbox(mail_dir) if mail_dir.is_dir() else []
    table = Table("number", "customer", "total", "status", "due", title=f"Invoices {period}")
    files: list[str] = []
    for doc, pdf in rows:
        number = str(doc.get("number") or "-")
        currency = str(doc.get("currency") or "")
        units = doc.get("total_units")
        total = "(draft)" if units is None else format_amount(from_fixed_units(units), currency)
        table.add_row(
            number, str(doc["customer_id"]), total, str(doc["status"]), str(doc.get("due_date"))
        )
        if pdf is not None:
            files.append(f"{number}  PDF    {pdf}")
        files.extend(
            f"{number}  email  {m.path}  to {m.to}"
            for m in mails
            if number != "-" and number in m.subject
        )
    console.print(table)
    for line in files:
        console.print(line, soft_wrap=True, highlight=False)
    console.print(f"{len(rows)} invoices for {period}; {len(mails)} emails in {mail_dir}/")
