"""``billing credits`` and ``billing charges``: a customer's credit balance, one-off charges."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from decimal import Decimal
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from billing_invoicing.bootstrap import cli_context
from billing_invoicing.domain.access import Scope
from billing_invoicing.domain.one_off import OneOffCharge, OneOffChargeError, OneOffTax
from billing_invoicing.service import audit_entries
from billing_invoicing.service.customer_credit import CreditStatement, credit_statement
from billing_invoicing.service.one_off_charges import (
    OneOffOutcome,
    OneOffPorts,
    UnknownCustomerError,
    add_one_off_charge,
)
from billing_runtime import tables
from billing_runtime.audit import cli_actor
from billing_schemas.money import MoneyError, format_amount, parse_decimal

console = Console()
err = Console(stderr=True)
OPERATOR = Scope(customer_id=None)
credits_app = typer.Typer(help="Customers' credit balances.", no_args_is_help=True)
charges_app = typer.Typer(help="One-off charges on open invoices.", no_args_is_help=True)


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


@credits_app.command("show")
def show_credits(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    as_json: Annotated[bool, typer.Option("--json", help="The ledger as JSON.")] = False,
) -> None:
    """The customer's credit balance per currency and the ledger entries that add up to it
    (overpayments, negative invoices, credit applied to invoices)."""

    async def run() -> CreditStatement:
        async with cli_context() as ctx:
            return await credit_statement(ctx.settlement.settlements, OPERATOR, customer)

    statement = asyncio.run(run())
    if as_json:
        sys.stdout.write(json.dumps(statement_json(statement), indent=2) + "\n")
        return
    if not statement.entries:
        console.print(f"customer {customer} has no credit")
        return
    table = Table(
        tables.key("recorded"),
        tables.key("entry"),
        tables.text("reason"),
        tables.key("invoice"),
        tables.amount("amount"),
        title=f"Credit of {customer}",
    )
    for e in statement.entries:
        table.add_row(
            "" if e.recorded_at is None else e.recorded_at.date().isoformat(),
            e.entry_id,
            e.reason,
            e.invoice_number or e.invoice_id or "",
            format_amount(e.amount, e.currency),
        )
    console.print(tables.fit(table, console.width))
    for currency, balance in sorted(statement.balances.items()):
        console.print(f"Balance {currency}: {format_amount(balance, currency)}")


def statement_json(statement: CreditStatement) -> dict[str, object]:
    """The statement as JSON: amounts as decimal strings."""
    return {
        "customer_id": statement.customer_id,
        "balances": {c: f"{b:f}" for c, b in sorted(statement.balances.items())},
        "entries": [
            {
                "entry_id": e.entry_id,
                "kind": e.kind.value,
                "currency": e.currency,
                "amount": f"{e.amount:f}",
                "reason": e.reason,
                "invoice_id": e.invoice_id,
                "invoice_number": e.invoice_number,
                "recorded_at": None if e.recorded_at is None else e.recorded_at.isoformat(),
            }
            for e in statement.entries
        ],
    }


def _decimal(text: str, what: str) -> Decimal:
    try:
        return parse_decimal(text)
    except MoneyError as exc:
        raise _fail(ValueError(f"{what}: {exc}")) from None


@charges_app.command("add")
def add_charge(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    *,
    period: Annotated[str, typer.Option(help="Billing period YYYY-MM of the open invoice.")],
    description: Annotated[str, typer.Option(help="Printed on the invoice line.")],
    quantity: Annotated[str, typer.Option(help="How many (e.g. 3, or 1.5 hours).")],
    unit_price: Annotated[str, typer.Option(help="Price of one, in the customer's currency.")],
    tax: Annotated[OneOffTax, typer.Option(help="standard (the invoice's VAT) or exempt.")] = (
        OneOffTax.STANDARD
    ),
    charge_id: Annotated[
        str | None,
        typer.Option("--id", help="Your id for it (default: derived from what it is)."),
    ] = None,
) -> None:
    """Add a one-off charge (setup fee, support hours, hardware) to the customer's open invoice
    for the period; adding the same charge again adds nothing."""
    request = OneOffCharge(
        customer_id=customer,
        period=period,
        description=description,
        quantity=_decimal(quantity, "--quantity"),
        unit_price=_decimal(unit_price, "--unit-price"),
        tax=tax,
        charge_id=charge_id,
    )

    async def run() -> OneOffOutcome:
        async with cli_context() as ctx:
            ports = OneOffPorts(ctx.ports.catalog, ctx.ports.invoices, ctx.ports.events)
            added = await add_one_off_charge(
                ports, OPERATOR, request, correlation_id=f"one-off:{uuid.uuid4().hex[:12]}"
            )
            if not added.already_added:
                audit_id, entry = audit_entries.one_off_charge_added(added, customer, cli_actor())
                await ctx.audit.record(entry, audit_id=audit_id)
            return added

    try:
        outcome = asyncio.run(run())
    except (OneOffChargeError, UnknownCustomerError) as exc:
        raise _fail(exc) from None
    where = (
        f"on the draft {outcome.invoice_id}"
        if outcome.on_draft
        else f"sent; not on the draft {outcome.invoice_id} yet (is invoicing running?)"
    )
    verb = "already added" if outcome.already_added else "added"
    console.print(
        f"charge {outcome.charge_id} {verb}: {outcome.description}, "
        f"{outcome.quantity:f} x {format_amount(outcome.unit_price, outcome.currency)} = "
        f"{format_amount(outcome.amount, outcome.currency)}, {where}"
    )
