"""``billing mail log``: what notify sent, to whom, and how it went; ``billing mail resend``:
send an uncertain email again."""

from __future__ import annotations

import asyncio
import getpass
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from billing_notify.adapters.delivery_log import utc_now
from billing_notify.bootstrap import delivery_log_context
from billing_notify.domain.delivery import Delivery
from billing_notify.service.resend import (
    ResendRefusedError,
    resend_uncertain,
    uncertain_of_invoice,
)
from billing_runtime import tables

console = Console()
mail_app = typer.Typer(help="Emails notify sent or tried to send.", no_args_is_help=True)


async def _recent(invoice: str | None, limit: int) -> list[Delivery]:
    async with delivery_log_context() as log:
        return await log.recent(invoice=invoice, limit=limit)


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    """One delivery-log record as JSON (without the event kept for retries)."""
    return {
        "message_id": delivery.message_id,
        "kind": delivery.kind,
        "invoice_id": delivery.invoice_id,
        "invoice_number": delivery.invoice_number,
        "customer_id": delivery.customer_id,
        "recipients": list(delivery.recipients),
        "delivered_to": list(delivery.delivered_to),
        "fallback_recipient": delivery.fallback_recipient,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "retries": delivery.retries,
        "next_attempt_at": None
        if delivery.next_attempt_at is None
        else delivery.next_attempt_at.isoformat(),
        "smtp_response": delivery.smtp_response,
        "created_at": delivery.created_at.isoformat(),
        "updated_at": delivery.updated_at.isoformat(),
    }


@mail_app.command("log")
def log_command(
    invoice: Annotated[
        str | None, typer.Option(help="Only the emails about this invoice (number or id).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The delivery log: recipient, kind, invoice, status, attempts, SMTP response, times."""
    deliveries = asyncio.run(_recent(invoice, limit))
    if as_json:
        print(json.dumps([delivery_json(d) for d in deliveries], indent=2))
        return
    table = Table(
        tables.key("updated"),
        tables.key("kind"),
        tables.key("invoice"),
        tables.text("recipients"),
        tables.key("status"),
        tables.amount("attempts"),
        tables.text("SMTP response"),
    )
    for d in deliveries:
        recipients = ", ".join(d.recipients) + (
            " (no Billing contact)" if d.fallback_recipient else ""
        )
        status = d.status.value
        if d.next_attempt_at is not None and status == "retrying":
            status += f" at {d.next_attempt_at.isoformat(timespec='seconds')}"
        table.add_row(
            d.updated_at.isoformat(timespec="seconds"),
            d.kind,
            d.invoice_number or d.invoice_id or "-",
            recipients,
            status,
            str(d.attempts),
            (d.smtp_response or "")[:120],
        )
    console.print(tables.fit(table, console.width))
    what = f" about invoice {invoice}" if invoice else ""
    console.print(f"{len(deliveries)} emails{what}")


async def _resend(target: str) -> list[Delivery]:
    async with delivery_log_context() as log:
        if target.startswith("<"):
            ids = [target]
        else:
            ids = [d.message_id for d in await uncertain_of_invoice(log, target)]
            if not ids:
                msg = f"no uncertain email about invoice {target}"
                raise ResendRefusedError(msg)
        operator = f"cli:{getpass.getuser()}"
        return [await resend_uncertain(log, i, utc_now(), operator) for i in ids]


@mail_app.command("resend")
def resend_command(
    target: Annotated[
        str,
        typer.Argument(
            help="The email's Message-ID (<...>, from `billing mail log --json`), or an invoice "
            "number: its uncertain emails."
        ),
    ],
) -> None:
    """Send an `uncertain` email again (notify stopped after the message data went out, so it
    never resends it by itself): only when the recipient did not get it."""
    try:
        records = asyncio.run(_resend(target))
    except ResendRefusedError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    for record in records:
        console.print(
            f"{record.message_id} ({record.kind}, {', '.join(record.recipients)}): "
            "scheduled now; notify's re-driver sends it within its poll interval"
        )
