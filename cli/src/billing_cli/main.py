"""``billing``: one command line over the four services.

Each service owns its commands (in its ``entrypoints/cli.py``); this module only puts them
under one name and adds the pipeline-wide ones. A service's commands are imported when one of
them runs (``billing_cli.lazy``): ``billing --help`` imports no service, ``billing invoices ...``
only invoicing's command line.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, NoReturn
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console

from billing_cli.lazy import LazyGroup, LazySubcommand


class BillingGroup(LazyGroup):
    """The root group: every subcommand by where it lives and its summary, in help order."""

    lazy_subcommands = (
        LazySubcommand(
            "ingest",
            "billing_ingest.entrypoints.cli:ingest",
            "Load a provider bill: publish its usage, reject bad rows with their reasons.",
        ),
        LazySubcommand(
            "rate",
            "billing_rating.entrypoints.cli:rate",
            "Re-rate a period with the price lists in effect now; publish only the differences.",
        ),
        LazySubcommand(
            "pay",
            "billing_invoicing.entrypoints.cli:pay",
            "Record a payment (publishes PaymentRecorded); without --amount, show the dues and "
            "how to pay.",
        ),
        LazySubcommand(
            "audit",
            "billing_webhooks.entrypoints.cli:audit_command",
            "The audit trail: every action that changed money or access, who did it and when.",
        ),
        LazySubcommand(
            "asyncapi",
            "billing_cli.asyncapi:asyncapi",
            "Generate each service's AsyncAPI document into services/<name>/asyncapi.yaml.",
        ),
        LazySubcommand(
            "reconcile",
            "billing_cli.reconcile.command:reconcile",
            "Show that every bill line and usage event of the period ended up once on an invoice.",
        ),
        LazySubcommand(
            "wait",
            "billing_cli.main:wait",
            "Wait until rating, invoicing and notify have consumed everything published so far.",
        ),
        LazySubcommand("bills", "billing_ingest.entrypoints.cli:bills_app", "Bills loaded so far."),
        LazySubcommand(
            "catalog",
            "billing_invoicing.entrypoints.cli:catalog_app",
            "Customers, accounts, contacts, price lists.",
        ),
        LazySubcommand(
            "invoices",
            "billing_invoicing.entrypoints.cli:invoices_app",
            "Generate, list and download invoices.",
        ),
        LazySubcommand(
            "credits",
            "billing_invoicing.entrypoints.cli_customers:credits_app",
            "Customers' credit balances.",
        ),
        LazySubcommand(
            "charges",
            "billing_invoicing.entrypoints.cli_customers:charges_app",
            "One-off charges on open invoices.",
        ),
        LazySubcommand("topics", "billing_cli.main:topics_app", "Kafka topics of the pipeline."),
        LazySubcommand("demo", "billing_cli.demo:demo_app", "The bundled demo."),
        LazySubcommand("dlq", "billing_cli.dlq:dlq_app", "Dead-letter topics."),
        LazySubcommand(
            "mail",
            "billing_notify.entrypoints.cli:mail_app",
            "Emails notify sent or tried to send.",
        ),
        LazySubcommand(
            "webhooks",
            "billing_webhooks.entrypoints.cli:webhooks_app",
            "Webhook endpoints (signed HTTPS deliveries of invoice, payment and bill events).",
        ),
        LazySubcommand(
            "users",
            "billing_portal.entrypoints.cli:users_app",
            "Portal users: operators and customer users.",
        ),
    )


console = Console()
app = typer.Typer(
    name="billing",
    help="Cloud billing pipeline: ingest bills, rate usage, issue and email invoices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=BillingGroup,
)
topics_app = typer.Typer(help="Kafka topics of the pipeline.", no_args_is_help=True)
# `topics` and `wait` are registered the usual way (Typer builds a group from them); their
# place in the help is the table's
app.add_typer(topics_app, name="topics")


@topics_app.command("create")
def create_topics() -> None:
    """Create every topic and dead-letter topic that does not exist yet."""
    from billing_runtime.kafka import ensure_topics
    from billing_runtime.settings import ServiceSettings
    from billing_schemas.topics import all_topic_names

    settings = ServiceSettings()
    names = all_topic_names(settings.topic_namespace)
    asyncio.run(ensure_topics(settings.kafka_bootstrap_servers, names))
    console.print(f"{len(names)} topics present")


@app.command("wait")
def wait(
    seconds: Annotated[float, typer.Option(help="Give up after this long.")] = 180.0,
) -> None:
    """Wait until rating, invoicing and notify have consumed everything published so far."""
    from billing_runtime.lag import wait_for_no_lag
    from billing_runtime.settings import ServiceSettings
    from billing_schemas.channels import awaited_groups

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
    except Exception as exc:
        # the client libraries are imported by the commands that use them: an exception of
        # theirs can only have been raised if they were
        if _is_a(exc, "aiokafka.errors", "KafkaConnectionError"):
            from billing_runtime.settings import ServiceSettings

            where = ServiceSettings().kafka_bootstrap_servers
            _unreachable("the Kafka broker", where, "BILLING_KAFKA_BOOTSTRAP_SERVERS", exc)
        if _is_a(exc, "pymongo.errors", "ConnectionFailure"):
            from billing_runtime.settings import ServiceSettings

            where = _without_password(ServiceSettings().mongodb_url)
            _unreachable("the database", where, "BILLING_MONGODB_URL", exc)
        raise


def _is_a(exc: Exception, module: str, name: str) -> bool:
    """Whether ``exc`` is a ``module.name``, without importing ``module``."""
    loaded = sys.modules.get(module)
    cls = getattr(loaded, name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


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
