"""``billing users``: the portal's users (operators and customer users)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from billing_portal.bootstrap import accounts_context, user_admin
from billing_portal.domain.users import Role, UserError, normalize_email
from billing_portal.service import user_audit
from billing_portal.service.accounts import add_user, disable_user
from billing_portal.settings import PortalSettings
from billing_runtime import tables
from billing_runtime.audit import cli_actor

console = Console()
err = Console(stderr=True)
users_app = typer.Typer(help="Portal users: operators and customer users.", no_args_is_help=True)


async def _add(
    email: str, role: Role, customer: str | None, language: str, reset: bool
) -> tuple[str, str]:
    settings = PortalSettings()
    async with user_admin(settings) as (ports, audit):
        before = await ports.users.get(normalize_email(email))
        user, token = await add_user(
            ports, email, role, customer, now=datetime.now(UTC), language=language, reset=reset
        )
        audit_id, entry = user_audit.user_added(user, before, cli_actor())
        await audit.record(entry, audit_id=audit_id)
    return user.email, f"{settings.public_url.rstrip('/')}/set-password/{token}"


@users_app.command("add")
def add(
    email: Annotated[str, typer.Argument(help="The user's email: the sign-in name.")],
    operator: Annotated[bool, typer.Option("--operator", help="An operator.")] = False,
    customer: Annotated[
        str | None, typer.Option("--customer", help="A user of this customer (its id).")
    ] = None,
    language: Annotated[str, typer.Option(help="Page language: en, de or fr.")] = "en",
    reset: Annotated[
        bool, typer.Option("--reset", help="An existing user: print a new link.")
    ] = False,
) -> None:
    """Add a user and print the one-time link that sets its password (valid 72 hours)."""
    if operator == (customer is not None):
        err.print("[red]error:[/red] give exactly one of --operator and --customer ID")
        raise typer.Exit(2)
    role = Role.OPERATOR if operator else Role.CUSTOMER
    try:
        email, link = asyncio.run(_add(email, role, customer, language, reset))
    except UserError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"{email}: set the password (once, within 72 hours) at")
    print(link)


async def _disable(email: str) -> str:
    async with user_admin(PortalSettings()) as (ports, audit):
        before, after = await disable_user(ports, email)
        audit_id, entry = user_audit.user_disabled(before, after, cli_actor())
        await audit.record(entry, audit_id=audit_id)
    return after.email


@users_app.command("disable")
def disable(email: Annotated[str, typer.Argument(help="The user's email.")]) -> None:
    """Disable a user: it can no longer sign in and its open sessions end (recorded in the
    audit trail; ``add --reset`` does not enable it again)."""
    try:
        done = asyncio.run(_disable(email))
    except UserError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"{done}: disabled")


async def _list() -> list[tuple[str, str, str, str]]:
    async with accounts_context(PortalSettings()) as accounts:
        users = await accounts.users.all()
    return [
        (
            u.email, u.role.value, u.customer_id or "",
            "disabled" if u.disabled else "yes" if u.password_hash is not None else "no",
        )
        for u in users
    ]  # fmt: skip


@users_app.command("list")
def list_users() -> None:
    """List the portal's users."""
    table = Table(
        tables.key("email"), tables.key("role"), tables.key("customer"), tables.key("password set")
    )
    for row in asyncio.run(_list()):
        table.add_row(*row)
    console.print(tables.fit(table, console.width))
