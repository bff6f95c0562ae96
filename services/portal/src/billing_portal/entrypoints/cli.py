"""``billing users``: the portal's users (operators and customer users)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from billing_portal.app import account_ports
from billing_portal.domain.users import Role, UserError
from billing_portal.service.accounts import add_user
from billing_portal.settings import PortalSettings
from billing_runtime.service import make_mongo_client

console = Console()
err = Console(stderr=True)
users_app = typer.Typer(help="Portal users: operators and customer users.", no_args_is_help=True)


async def _add(
    email: str, role: Role, customer: str | None, language: str, reset: bool
) -> tuple[str, str]:
    settings = PortalSettings()
    client = make_mongo_client(settings.mongodb_url)
    try:
        ports = account_ports(client[settings.mongodb_database])
        user, token = await add_user(
            ports, email, role, customer, now=datetime.now(UTC), language=language, reset=reset
        )
    finally:
        await client.close()
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


async def _list() -> list[tuple[str, str, str, bool]]:
    settings = PortalSettings()
    client = make_mongo_client(settings.mongodb_url)
    try:
        users = await account_ports(client[settings.mongodb_database]).users.all()
    finally:
        await client.close()
    return [
        (u.email, u.role.value, u.customer_id or "", u.password_hash is not None) for u in users
    ]


@users_app.command("list")
def list_users() -> None:
    """List the portal's users."""
    table = Table("email", "role", "customer", "password set")
    for email, role, customer, has_password in asyncio.run(_list()):
        table.add_row(email, role, customer, "yes" if has_password else "no")
    console.print(table)
