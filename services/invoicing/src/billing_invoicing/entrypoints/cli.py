"""``billing catalog`` and ``billing invoices``: the operator's side of invoicing."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from opentelemetry import trace
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from billing_catalog.models import Catalog, EInvoiceFormat
from billing_invoicing.adapters.catalog_repo import ApplyResult
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.invoice_repo import INVOICES
from billing_invoicing.adapters.stored_rows import invoice_row_of, line_amount
from billing_invoicing.bootstrap import cli_context
from billing_invoicing.domain.access import Scope
from billing_invoicing.domain.invoice import InvoiceDocument
from billing_invoicing.domain.settlement import SettlementError
from billing_invoicing.domain.units import from_units
from billing_invoicing.service import audit_entries
from billing_invoicing.service.einvoices import (
    EInvoiceFile,
    EInvoiceUnavailableError,
    einvoice_file,
)
from billing_invoicing.service.focus_export import (
    FOCUS_VERSION,
    FocusUnavailableError,
    focus_file_name,
    write_focus_csv,
)
from billing_invoicing.service.generate_invoices import Outcome, outcomes, preview, request_close
from billing_invoicing.service.settle_invoices import (
    CreditNoteOutcome,
    Dues,
    InvoiceNotFoundError,
    PaymentOutcome,
    dues,
    flag_overdue,
    issue_credit_note,
    record_payment,
)
from billing_invoicing.service.usage_csv import write_usage_csv
from billing_runtime import tables
from billing_runtime.audit import cli_actor
from billing_runtime.tracing import TRACER_NAME, configure_tracing
from billing_schemas.events import PERIOD_PATTERN, OverdueInvoice, today_utc
from billing_schemas.money import MoneyError, format_amount, parse_decimal

console = Console()
err = Console(stderr=True)
catalog_app = typer.Typer(help="Customers, accounts, contacts, price lists.", no_args_is_help=True)
invoices_app = typer.Typer(help="Generate, list and download invoices.", no_args_is_help=True)


def load_catalog_file(path: Path) -> Catalog:
    """Parse and validate a catalog YAML file; errors name the entry and field."""
    import yaml  # only `catalog apply` reads YAML

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
            before = await ctx.ports.catalog.price_lists([p.id for p in catalog.price_lists])
            applied = await ctx.ports.catalog.apply(catalog)
            for audit_id, entry in audit_entries.catalog_applied(
                catalog, applied, before, cli_actor()
            ):
                await ctx.audit.record(entry, audit_id=audit_id)
            return applied

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
            audit_id, entry = audit_entries.close_requested(
                period, customer, sorted(closing), cli_actor()
            )
            await ctx.audit.record(entry, audit_id=audit_id)
            with console.status(f"closing {len(closing)} invoices of {period}..."):
                await _wait_until_published(
                    ctx.ports.invoices.is_published, list(closing), wait_seconds
                )
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
    _print_outcomes(period, result)


async def _wait_until_published(
    is_published: Callable[[str], Awaitable[bool]], waiting: list[str], wait_seconds: float
) -> None:
    """Wait until the invoicing service has finalized and announced each of these invoices;
    :class:`TimeoutError` after ``wait_seconds``. One look-up by _id per invoice and per wait
    (not a read of the period's invoices every few tenths of a second, which would compete
    with the close for the database)."""
    deadline = time.monotonic() + wait_seconds
    while waiting:
        if await is_published(waiting[0]):
            waiting.pop(0)
            continue
        if time.monotonic() > deadline:
            msg = (
                f"the invoicing service has not finished {', '.join(waiting)} "
                f"after {wait_seconds:.0f} s: is it running? (scripts/services.sh "
                "status; var/log/invoicing.log)"
            )
            raise TimeoutError(msg)
        await asyncio.sleep(0.5)


def _print_outcomes(period: str, result: list[Outcome]) -> None:
    table = Table(
        tables.key("customer"),
        tables.key("number"),
        tables.amount("total"),
        tables.key("status"),
        tables.text("action"),
        title=f"Period {period}",
    )
    for o in result:
        total = format_amount(o.total, o.currency) if o.currency else "-"
        table.add_row(o.customer_id, o.number or "-", total, o.status, o.action)
    console.print(tables.fit(table, console.width))


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
    print_invoice_rows(out)


def print_invoice_rows(out: list[dict[str, str | None]]) -> None:
    """The invoice list for people: every number, date and amount whole at any width."""
    table = Table(
        tables.key("number"),
        tables.text("customer"),
        tables.key("period"),
        tables.amount("total"),
        tables.key("status"),
        tables.key("issued"),
        tables.key("due"),
    )
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
    console.print(tables.fit(table, console.width))


def invoice_row(doc: dict[str, Any]) -> dict[str, str | None]:
    """An invoice document as a flat row of strings (amounts as decimal strings)."""
    total = doc.get("total_units")
    currency = doc.get("currency")
    draft = sum((line_amount(line, "price") for line in doc.get("draft_lines", [])), Decimal(0))
    return {
        "invoice_id": doc["_id"],
        "number": doc.get("number"),
        "customer_id": doc["customer_id"],
        "period": doc["period"],
        "status": doc["status"],
        "currency": doc.get("currency"),
        "total": None if total is None else format(from_units(total, currency), "f"),
        "draft_total": format(draft, "f") if total is None else None,
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


@invoices_app.command("einvoice")
def download_einvoice(
    number: Annotated[str, typer.Argument(help="Invoice or credit note number.")],
    fmt: Annotated[
        EInvoiceFormat,
        typer.Option("--format", "-f", help="facturx (PDF/A-3 + CII), xrechnung (CII), peppol."),
    ] = EInvoiceFormat.FACTURX,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
) -> None:
    """Write an invoice or credit note as an EN 16931 e-invoice (docs/einvoice.md); the default
    file name is ``<number>-<format>.pdf|xml``."""

    async def run() -> EInvoiceFile:
        async with cli_context() as ctx:
            return await einvoice_file(ctx.einvoices, Scope(customer_id=None), number, fmt)

    try:
        found = asyncio.run(run())
    except (InvoiceNotFoundError, EInvoiceUnavailableError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    target = output or Path(found.name)
    target.write_bytes(found.content)
    console.print(f"wrote {target} ({len(found.content):,} bytes, {found.media_type})")


# --- after finalization: show, csv, pay, credit, void, overdue -----------------------------


def _money(amount: Decimal, currency: str) -> str:
    return format_amount(amount, currency)


def _print_dues(d: Dues) -> None:
    console.print(
        f"[bold]Invoice {d.number}[/bold]  {d.customer_name} ({d.customer_id})  "
        f"issued {d.issue_date}, due {d.due_date}  status [bold]{d.status}[/bold]"
    )
    table = Table(tables.text(""), tables.amount("amount"), show_header=False, box=None)
    table.add_row("Subtotal", _money(d.subtotal, d.currency))
    for label, tax in d.taxes:
        table.add_row(label, _money(tax, d.currency))
    table.add_row("Total", _money(d.total, d.currency))
    if d.credit_applied:
        table.add_row("Credit applied", _money(-d.credit_applied, d.currency))
    for note in d.credit_notes:
        table.add_row(f"Credit note {note.number}", _money(-note.amount, d.currency))
    for pay in d.payments:
        table.add_row(
            f"Paid {pay.paid_on} by {pay.method} ({pay.reference})",
            _money(-pay.amount, d.currency),
        )
    table.add_row("[bold]Outstanding[/bold]", f"[bold]{_money(d.outstanding, d.currency)}[/bold]")
    console.print(tables.fit(table, console.width))
    if d.customer_credit:
        console.print(
            f"Customer credit of {d.customer_id}: {_money(d.customer_credit, d.currency)}"
        )
    if d.outstanding > 0 and d.payment_methods:
        console.print("How to pay (quote the reference):")
        for method in d.payment_methods:
            console.print(f"  {method.kind}: {method.details}  reference {d.number}")


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


@invoices_app.command("show")
def show_invoice(
    number: Annotated[str, typer.Argument(help="Invoice number (or id customer:period).")],
    as_json: Annotated[bool, typer.Option("--json", help="The stored document as JSON.")] = False,
) -> None:
    """Show an invoice: its lines, netting, taxes, payments, credit notes and what is owed."""

    async def run() -> tuple[dict[str, Any] | None, Dues | None]:
        async with cli_context() as ctx:
            doc = await ctx.ports.invoices.document_by_number(number)
            if doc is None or not doc.get("number"):
                return doc, None
            return doc, await dues(ctx.settlement, number)

    try:
        doc, owed = asyncio.run(run())
    except SettlementError as exc:
        raise _fail(exc) from None
    if doc is None:
        raise _fail(LookupError(f"no invoice {number!r}"))
    if as_json:
        print(json.dumps(invoice_row(doc) | {"document": doc.get("document")}, indent=2))
        return
    if owed is None:  # a draft
        row = invoice_row(doc)
        console.print(
            f"Draft {row['invoice_id']}: {row['draft_total']} {row['currency']} so far "
            "(taxes and subscriptions are added at the close; --dry-run shows them)"
        )
        return
    invoice = InvoiceDocument.model_validate(doc["document"])
    lines = Table(
        tables.text("description"),
        tables.amount("usage lines"),
        tables.amount("amount"),
        title=f"Invoice {invoice.number}",
    )
    for line in invoice.lines:
        lines.add_row(
            line.description,
            str(line.charge_count or ""),
            _money(line.amount, invoice.currency),
        )
    console.print(tables.fit(lines, console.width))
    if invoice.netting is not None:
        n = invoice.netting
        console.print(
            f"Cloud charges {_money(n.cloud_charges, invoice.currency)}, included "
            f"{_money(n.included, invoice.currency)}, covered {_money(n.covered, invoice.currency)}"
            f", underuse {_money(n.underuse, invoice.currency)} ({n.underuse_policy}), overuse "
            f"{_money(n.overuse, invoice.currency)} ({n.overuse_policy}); payer-commitment "
            f"savings removed {_money(n.savings_removed, invoice.currency)}"
        )
    if invoice.tax_mention:
        console.print(invoice.tax_mention)
    _print_dues(owed)


@invoices_app.command("csv")
def usage_csv(
    number: Annotated[str, typer.Argument(help="Invoice number (or id customer:period).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
) -> None:
    """Write the CSV of every rated usage line behind an invoice (cost, price, rule applied)."""

    async def run() -> int | None:
        async with cli_context() as ctx:
            doc = await ctx.ports.invoices.document_by_number(number)
            if doc is None:
                return None
            target = output or Path(f"{doc.get('number') or doc['_id'].replace(':', '-')}.csv")
            with target.open("w", encoding="utf-8", newline="") as out:
                rows = await write_usage_csv(ctx.ports.invoices.charges_of(doc["_id"]), out)
            console.print(f"wrote {target} ({rows} usage lines)")
            return rows

    if asyncio.run(run()) is None:
        raise _fail(LookupError(f"no invoice {number!r}"))


@invoices_app.command("focus")
def focus_dataset(
    number: Annotated[str, typer.Argument(help="Invoice number.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
) -> None:
    """Write the invoice's FOCUS 1.2 dataset (CSV): its charges as the customer's FinOps tools
    read them, with us as the invoice issuer (docs/api.md, "FOCUS")."""

    async def run() -> tuple[Path, int] | None:
        async with cli_context() as ctx:
            doc = await ctx.ports.invoices.document_by_number(number)
            if doc is None:
                return None
            stored = invoice_row_of(doc)
            target = output or Path(focus_file_name(stored))
            buffer = io.StringIO()
            charges = ctx.ports.invoices.charges_of(stored.invoice_id)
            rows = await write_focus_csv(stored, charges, buffer)
            target.write_text(buffer.getvalue(), encoding="utf-8")
            return target, rows

    try:
        written = asyncio.run(run())
    except FocusUnavailableError as exc:
        raise _fail(exc) from None
    if written is None:
        raise _fail(LookupError(f"no invoice {number!r}"))
    console.print(f"wrote {written[0]} (FOCUS {FOCUS_VERSION}, {written[1]} rows)")


def _decimal(text: str, what: str) -> Decimal:
    try:
        return parse_decimal(text)
    except MoneyError as exc:
        raise _fail(ValueError(f"{what}: {exc}")) from None


def pay(
    number: Annotated[str, typer.Argument(help="Invoice number.")],
    amount: Annotated[
        str | None, typer.Option(help="Amount paid, in the invoice's currency (e.g. 120.50).")
    ] = None,
    method: Annotated[str | None, typer.Option(help="One of the seller's payment methods.")] = None,
    reference: Annotated[str | None, typer.Option(help="The payment's reference.")] = None,
    paid_on: Annotated[
        str | None, typer.Option("--date", help="Day paid, YYYY-MM-DD (default today).")
    ] = None,
) -> None:
    """Record a payment (publishes PaymentRecorded); without --amount, show the dues and how to pay.

    Recording the same payment (invoice, method, reference) twice records it once. Money paid
    beyond what is owed is recorded as customer credit.
    """

    if amount is None:
        _show_dues(number)
        return
    if method is None or reference is None:
        raise _fail(ValueError("recording a payment needs --amount, --method and --reference"))
    value = _decimal(amount, "--amount")
    day = date.fromisoformat(paid_on) if paid_on else today_utc()

    async def run() -> tuple[PaymentOutcome, Dues]:
        async with cli_context() as ctx:
            outcome = await record_payment(
                ctx.settlement,
                number=number,
                amount=value,
                method=method,
                reference=reference,
                paid_on=day,
                correlation_id=f"payment:{uuid.uuid4().hex[:12]}",
            )
            audit_id, entry = audit_entries.payment_recorded(outcome, cli_actor())
            await ctx.audit.record(entry, audit_id=audit_id)
            return outcome, await dues(ctx.settlement, number)

    try:
        outcome, owed = asyncio.run(run())
    except (LookupError, SettlementError) as exc:
        raise _fail(exc) from None
    _print_payment(outcome, owed)


def _show_dues(number: str) -> None:
    """Print an invoice's dues and how to pay (``billing pay NUMBER`` without --amount)."""

    async def show() -> Dues:
        async with cli_context() as ctx:
            return await dues(ctx.settlement, number)

    try:
        _print_dues(asyncio.run(show()))
    except (LookupError, SettlementError) as exc:
        raise _fail(exc) from None


def _print_payment(outcome: PaymentOutcome, owed: Dues) -> None:
    p = outcome.payment
    verb = "already recorded" if outcome.already_recorded else "recorded"
    console.print(
        f"payment {p.payment_id} {verb}: {_money(p.amount, p.currency)} by {p.method} "
        f"({p.reference}) on {p.paid_on}; invoice {p.invoice_number} is {outcome.status.value}, "
        f"outstanding {_money(p.outstanding_after, p.currency)}"
    )
    if outcome.customer_credit_added:
        console.print(
            f"overpayment: {_money(outcome.customer_credit_added, p.currency)} recorded as "
            f"credit of customer {p.customer_id}"
        )
    _print_dues(owed)


def _credit(number: str, amount: Decimal | None, reason: str) -> None:
    async def run() -> CreditNoteOutcome:
        async with cli_context() as ctx:
            issued = await issue_credit_note(
                ctx.settlement,
                number=number,
                amount=amount,
                reason=reason,
                issue_date=today_utc(),
                correlation_id=f"credit-note:{uuid.uuid4().hex[:12]}",
            )
            audit_id, entry = audit_entries.credit_note_issued(
                issued, cli_actor(), void=amount is None
            )
            await ctx.audit.record(entry, audit_id=audit_id)
            return issued

    try:
        outcome = asyncio.run(run())
    except (LookupError, SettlementError) as exc:
        raise _fail(exc) from None
    note = outcome.credit_note
    verb = "already issued" if outcome.already_issued else "issued"
    console.print(
        f"credit note {note.credit_note_number} {verb} on {note.invoice_number}: "
        f"{_money(note.total, note.currency)} ({note.reason}); invoice is {outcome.status.value}"
    )
    if outcome.customer_credit_added:
        console.print(
            "already paid beyond what is now owed: "
            f"{_money(outcome.customer_credit_added, note.currency)} recorded as credit of "
            f"customer {note.customer_id}"
        )


@invoices_app.command("credit")
def credit_note(
    number: Annotated[str, typer.Argument(help="Invoice number.")],
    amount: Annotated[str, typer.Option(help="Amount credited, tax included.")],
    reason: Annotated[str, typer.Option(help="Why (printed on the credit note).")],
) -> None:
    """Issue a credit note against a finalized invoice (publishes CreditNoteIssued)."""
    _credit(number, _decimal(amount, "--amount"), reason)


@invoices_app.command("void")
def void_invoice(
    number: Annotated[str, typer.Argument(help="Invoice number.")],
    reason: Annotated[str, typer.Option(help="Why (printed on the credit note).")],
) -> None:
    """Void a finalized invoice: a credit note for everything not credited yet."""
    _credit(number, None, reason)


@invoices_app.command("overdue")
def overdue(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="The day to check, YYYY-MM-DD (default today).")
    ] = None,
) -> None:
    """Mark invoices past their due date as overdue and publish InvoiceOverdue for each (run
    daily; notify decides which days send a reminder)."""
    day = date.fromisoformat(as_of) if as_of else today_utc()

    async def run() -> list[OverdueInvoice]:
        async with cli_context() as ctx:
            return await flag_overdue(
                ctx.settlement, as_of=day, correlation_id=f"overdue:{day.isoformat()}"
            )

    found = asyncio.run(run())
    if not found:
        console.print(f"no invoice overdue on {day}")
        return
    table = Table(
        tables.key("number"),
        tables.key("customer"),
        tables.key("due"),
        tables.amount("days"),
        tables.amount("outstanding"),
        title=f"Overdue on {day}",
    )
    for o in found:
        table.add_row(
            o.invoice_number,
            o.customer_id,
            o.due_date.isoformat(),
            str(o.days_overdue),
            _money(o.outstanding, o.currency),
        )
    console.print(tables.fit(table, console.width))
