"""``billing``: one command line over the four services.

Each service owns its commands (in its ``entrypoints/cli.py``); this module only puts them
under one name and adds the pipeline-wide ones.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, NoReturn
from urllib.parse import urlsplit, urlunsplit

import typer
from aiokafka.errors import KafkaConnectionError
from pymongo.errors import ConnectionFailure
from rich.console import Console

from billing_cli.asyncapi import asyncapi
from billing_cli.demo import demo_app
from billing_cli.dlq import dlq_app
from billing_cli.reconcile.command import reconcile
from billing_ingest.entrypoints.cli import bills_app, ingest
from billing_invoicing.entrypoints.cli import catalog_app, invoices_app, pay
from billing_invoicing.entrypoints.cli_customers import charges_app, credits_app
from billing_notify.entrypoints.cli import mail_app
from billing_portal.entrypoints.cli import users_app
from billing_rating.entrypoints.cli import rate
from billing_runtime.kafka import ensure_topics
from billing_runtime.lag import wait_for_no_lag
from billing_runtime.settings import ServiceSettings
from billing_schemas.channels import awaited_groups
from billing_schemas.topics import all_topic_names
from billing_webhooks.entrypoints.cli import audit_command, webhooks_app

console = Console()
app = typer.Typer(
    name="billing",
    help="Cloud billing pipeline: ingest bills, rate usage, issue and email invoices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("ingest")(ingest)
app.add_typer(bills_app, name="bills")
app.command("rate")(rate)
app.add_typer(catalog_app, name="catalog")
app.add_typer(invoices_app, name="invoices")
app.command("pay")(pay)
app.add_typer(credits_app, name="credits")
app.add_typer(charges_app, name="charges")
topics_app = typer.Typer(help="Kafka topics of the pipeline.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(demo_app, name="demo")
app.add_typer(dlq_app, name="dlq")
app.add_typer(mail_app, name="mail")
app.add_typer(webhooks_app, name="webhooks")
app.command("audit")(audit_command)
app.add_typer(users_app, name="users")
app.command("asyncapi")(asyncapi)
app.command("reconcile")(reconcile)


@topics_app.command("create")
def create_topics() -> None:
    """Create every topic and dead-letter topic that does not exist yet."""
    settings = ServiceSettings()
    names = all_topic_names(settings.topic_namespace)
    asyncio.run(ensure_topics(settings.kafka_bootstrap_servers, names))
    console.print(f"{len(names)} topics present")


@app.command("wait")
def wait(
    seconds: Annotated[float, typer.Option(help="Give up after this long.")] = 180.0,
) -> None:
    """Wait until rating, invoicing and notify have consumed everything published so far."""
    settings = ServiceSettings()
    # the groups the channels mark as awaited: rating, invoicing and notify's
    groups = awaited_groups(settings.topic_namespace)
    with console.status("waiting for the consumers to catch up..."):
        try:
            asyncio.run(
                wait_for_no_lag(settings.kafka_bootstrap_servers, groups, within_seconds=seconds)
            )
        except TimeoutError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
    console.print("pipeline idle: every consumer group is caught up")


def main() -> None:
    """Console-script entry point: a broker or database that cannot be reached is said so in
    one line naming its address, not with a traceback."""
    try:
        app()
    except KafkaConnectionError as exc:
        where = ServiceSettings().kafka_bootstrap_servers
        _unreachable("the Kafka broker", where, "BILLING_KAFKA_BOOTSTRAP_SERVERS", exc)
    except ConnectionFailure as exc:
        where = _without_password(ServiceSettings().mongodb_url)
        _unreachable("the database", where, "BILLING_MONGODB_URL", exc)


def _unreachable(what: str, where: str, variable: str, exc: Exception) -> NoReturn:
    console.print(
        f"[red]error:[/red] cannot reach {what} at {where} ({type(exc).__name__}). Is it "
        f"running? `make up` starts the local one; {variable} names another."
    )
    sys.exit(1)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
