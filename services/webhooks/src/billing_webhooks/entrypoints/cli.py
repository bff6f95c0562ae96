"""``billing webhooks add|list|disable|enable|deliveries``: endpoints and what they received.

The commands work on the webhooks service's database directly, as an operator
(``cli:<os user>`` is recorded as who created an endpoint).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from billing_runtime import tables
from billing_runtime.access import Scope
from billing_runtime.audit import cli_actor
from billing_webhooks.adapters.mongo import MongoDeliveries, MongoEndpoints
from billing_webhooks.bootstrap import cli_stores
from billing_webhooks.domain.audit import AuditRecord
from billing_webhooks.domain.deliveries import Attempt, Delivery
from billing_webhooks.domain.endpoints import EndpointError, EndpointNotFoundError
from billing_webhooks.service import endpoints as cases
from billing_webhooks.service.audit import audit_trail
from billing_webhooks.settings import WebhooksSettings

console = Console()
webhooks_app = typer.Typer(
    help="Webhook endpoints (signed HTTPS deliveries of invoice, payment and bill events).",
    no_args_is_help=True,
)
OPERATOR = Scope(None)
T = TypeVar("T")


def _run(work: Callable[[MongoEndpoints, MongoDeliveries, WebhooksSettings], Awaitable[T]]) -> T:
    async def go() -> T:
        settings = WebhooksSettings()
        async with cli_stores(settings) as kept:
            return await work(kept.endpoints, kept.deliveries, settings)

    try:
        return asyncio.run(go())
    except (EndpointError, EndpointNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


@webhooks_app.command("add")
def add_command(
    url: Annotated[str, typer.Argument(help="HTTPS URL the deliveries are POSTed to.")],
    customer: Annotated[
        str | None,
        typer.Option(
            help="The customer whose events it receives (none: every customer's, and bills)."
        ),
    ] = None,
    events: Annotated[
        str, typer.Option(help="Comma-separated event types (none: all), e.g. invoice.paid.")
    ] = "",
    description: Annotated[str, typer.Option(help="What receives them.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Register an endpoint and print its signing secret (shown only now)."""
    kinds = [e for e in events.split(",") if e.strip()]

    async def work(
        endpoints: MongoEndpoints, deliveries: MongoDeliveries, settings: WebhooksSettings
    ) -> Any:
        del deliveries
        return await cases.add_endpoint(
            endpoints,
            OPERATOR,
            cases.NewEndpoint(url, customer, kinds, description),
            actor=cli_actor(),
            allow_http=settings.allow_http_urls,
        )

    endpoint = _run(work)
    if as_json:
        # the API's JSON shapes: importing them imports FastAPI, so only for --json
        from billing_webhooks.entrypoints.http import endpoint_out

        print(_json(endpoint_out(endpoint) | {"secret": endpoint.secret}))
        return
    console.print(f"endpoint {endpoint.endpoint_id} -> {endpoint.url}")
    console.print(f"secret (give it to the receiver; not shown again): {endpoint.secret}")


@webhooks_app.command("list")
def list_command(
    customer: Annotated[str | None, typer.Option(help="Only this customer's.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Every endpoint: URL, customer, event types, enabled or why not."""

    async def work(
        endpoints: MongoEndpoints, deliveries: MongoDeliveries, settings: WebhooksSettings
    ) -> Any:
        del deliveries, settings
        return await cases.visible_endpoints(endpoints, OPERATOR, customer)

    found = _run(work)
    if as_json:
        from billing_webhooks.entrypoints.http import endpoint_out

        print(_json([endpoint_out(e) for e in found]))
        return
    table = Table(
        tables.key("id"),
        tables.key("url"),
        tables.key("customer"),
        tables.text("events"),
        tables.text("state"),
    )
    for e in found:
        state = "enabled" if e.enabled else f"disabled: {e.disabled_reason}"
        if e.enabled and e.failing_since is not None:
            state += f" (failing since {e.failing_since.isoformat(timespec='seconds')})"
        events = ", ".join(sorted(e.event_kinds)) or "all"
        table.add_row(e.endpoint_id, e.url, e.customer_id or "(operators)", events, state)
    console.print(tables.fit(table, console.width))
    console.print(f"{len(found)} endpoints")


@webhooks_app.command("disable")
def disable_command(
    endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id (ep_...).")],
    reason: Annotated[str, typer.Option(help="Why (kept on the endpoint).")] = "",
) -> None:
    """Stop delivering to an endpoint; its queued deliveries are abandoned."""
    why = f"{reason or 'disabled'} ({cli_actor()})"

    async def work(
        endpoints: MongoEndpoints, deliveries: MongoDeliveries, settings: WebhooksSettings
    ) -> Any:
        del settings
        return await cases.disable_endpoint(
            endpoints, deliveries, OPERATOR, endpoint_id, reason=why
        )

    endpoint = _run(work)
    console.print(f"endpoint {endpoint.endpoint_id} disabled: {endpoint.disabled_reason}")


@webhooks_app.command("enable")
def enable_command(
    endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id (ep_...).")],
) -> None:
    """Deliver new events to a disabled endpoint again."""

    async def work(
        endpoints: MongoEndpoints, deliveries: MongoDeliveries, settings: WebhooksSettings
    ) -> Any:
        del deliveries, settings
        return await cases.enable_endpoint(endpoints, OPERATOR, endpoint_id)

    endpoint = _run(work)
    console.print(f"endpoint {endpoint.endpoint_id} enabled")


@webhooks_app.command("deliveries")
def deliveries_command(
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's.")] = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer's endpoints'.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    attempts: Annotated[bool, typer.Option(help="List every attempt of each.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The delivery log: event, endpoint, state, attempts, last status and response time."""

    async def work(
        endpoints: MongoEndpoints, deliveries: MongoDeliveries, settings: WebhooksSettings
    ) -> Any:
        del endpoints, settings
        found = await deliveries.deliveries(endpoint_id=endpoint, customer_id=customer, limit=limit)
        logs = {d.delivery_id: await deliveries.attempts(d.delivery_id) for d in found}
        return found, logs

    found, logs = _run(work)
    if as_json:
        from billing_webhooks.entrypoints.http import attempt_out, delivery_out

        rows = [
            delivery_out(d) | {"attempt_log": [attempt_out(a) for a in logs[d.delivery_id]]}
            for d in found
        ]
        print(_json(rows))
        return
    table = _delivery_table(found, logs, with_attempts=attempts)
    console.print(tables.fit(table, console.width))
    console.print(f"{len(found)} deliveries")


def _delivery_table(
    found: list[Delivery], logs: dict[str, list[Attempt]], *, with_attempts: bool
) -> Table:
    """One row per delivery, with a row per attempt under it when ``with_attempts``."""
    table = Table(
        tables.key("created"),
        tables.key("event"),
        tables.key("type"),
        tables.key("endpoint"),
        tables.key("state"),
        tables.amount("attempts"),
        tables.text("last"),
        tables.amount("ms"),
    )
    for d in found:
        last = str(d.last_status) if d.last_status is not None else (d.last_error or "-")
        ms = "-" if d.last_duration_ms is None else f"{d.last_duration_ms:.0f}"
        table.add_row(
            d.created_at.isoformat(timespec="seconds"),
            d.message_id,
            d.kind.value,
            d.endpoint_id,
            d.state.value,
            str(d.attempts),
            last[:60],
            ms,
        )
        if with_attempts:
            for a in logs[d.delivery_id]:
                answer = str(a.status_code) if a.status_code is not None else (a.error or "-")
                table.add_row(
                    "",
                    f"  attempt {a.number}",
                    a.at.isoformat(timespec="seconds"),
                    "",
                    "",
                    "",
                    answer[:60],
                    f"{a.duration_ms:.0f}",
                )
    return table


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        console.print(f"[red]error:[/red] --since {text!r} is not a date or an ISO 8601 time")
        raise typer.Exit(2) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def audit_command(
    since: Annotated[
        str | None,
        typer.Option(help="From this date or time on (ISO 8601, UTC unless it says otherwise)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 1000,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print as JSON, with before/after.")
    ] = False,
) -> None:
    """The audit trail: every action that changed money or access, who did it and when."""
    start = _since(since)

    async def read() -> list[AuditRecord]:
        async with cli_stores(WebhooksSettings()) as kept:
            return await audit_trail(kept.audit, OPERATOR, since=start, limit=limit)

    found = asyncio.run(read())
    if as_json:
        print(_json([r.as_json() for r in found]))
        return
    table = Table(
        tables.key("at"),
        tables.key("actor"),
        tables.key("action"),
        tables.key("subject"),
        tables.text("summary"),
    )
    for r in found:
        table.add_row(
            r.at.isoformat(timespec="seconds"),
            r.entry.actor,
            r.entry.action,
            r.entry.subject,
            r.entry.summary[:100],
        )
    console.print(tables.fit(table, console.width))
    console.print(f"{len(found)} actions" + (f" since {start.isoformat()}" if start else ""))
