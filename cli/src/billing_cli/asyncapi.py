"""Each service's AsyncAPI 3.0 document, generated from its code into the repository.

``billing asyncapi`` writes ``services/<name>/asyncapi.yaml``; ``billing asyncapi --check``
(and the test suite) fails when a committed document differs from what the code declares.

Handlers take raw bytes and validate each message themselves (so one bad message goes to the
dead-letter topic instead of failing its batch); FastStream therefore cannot see their payload
type, and the generator documents it from ``Runtime.consumes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from faststream.specification import AsyncAPI
from pydantic import TypeAdapter
from rich.console import Console

from billing_ingest.app import build as build_ingest
from billing_ingest.settings import IngestSettings
from billing_invoicing.app import build as build_invoicing
from billing_invoicing.settings import InvoicingSettings
from billing_notify.adapters.memory import InMemoryInvoicePdfs
from billing_notify.app import build as build_notify
from billing_notify.settings import NotifySettings
from billing_rating.app import build as build_rating
from billing_rating.settings import RatingSettings
from billing_runtime.service import Runtime
from billing_webhooks.app import build as build_webhooks
from billing_webhooks.settings import WebhooksSettings

ROOT = Path(__file__).resolve().parents[3]
DOCUMENT_BROKER = "kafka:9092"
"""The broker address written into the documents (not the local one, which varies)."""

console = Console()

DOCUMENT_SETTINGS = {"kafka_bootstrap_servers": DOCUMENT_BROKER, "topic_namespace": ""}
"""Fixed, so that the documents do not depend on the environment they are generated in."""

SERVICES: dict[str, tuple[str, Callable[[], Runtime]]] = {
    "ingest": (
        "Parses provider bills and upstream usage events into normalized usage records.",
        lambda: build_ingest(IngestSettings.model_validate(DOCUMENT_SETTINGS)),
    ),
    "rating": (
        "Rates usage records with each customer's price list: cost, price and margin.",
        lambda: build_rating(RatingSettings.model_validate(DOCUMENT_SETTINGS)),
    ),
    "invoicing": (
        "Assembles drafts from rated charges; closes periods into numbered PDF invoices.",
        lambda: build_invoicing(InvoicingSettings.model_validate(DOCUMENT_SETTINGS)),
    ),
    "notify": (
        "Emails each finalized invoice, PDF attached, to the customer's Billing contacts.",
        # the document describes channels: no invoicing API (nor its token) behind the PDFs
        lambda: build_notify(
            NotifySettings.model_validate(DOCUMENT_SETTINGS), pdfs=InMemoryInvoicePdfs()
        ),
    ),
    "webhooks": (
        "Delivers invoice, payment, credit-note and bill events to registered HTTPS endpoints, "
        "signed per the Standard Webhooks specification.",
        lambda: build_webhooks(WebhooksSettings.model_validate(DOCUMENT_SETTINGS)),
    ),
}


def document_path(service: str) -> Path:
    """Where a service's document lives in the repository."""
    return ROOT / "services" / service / "asyncapi.yaml"


async def generate(service: str) -> str:
    """The service's AsyncAPI 3.0 document as YAML."""
    description, build = SERVICES[service]
    runtime = build()
    try:
        spec = AsyncAPI(
            runtime.broker,
            title=f"billing-{service}",
            version="1",
            description=description,
            schema_version="3.0.0",
        ).to_specification()
        document: dict[str, Any] = spec.to_jsonable()
    finally:
        for hook in runtime.on_shutdown:
            await hook()
        await runtime.mongo.close()
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for title, event_type in sorted(runtime.consumes.items()):
        schema = TypeAdapter(event_type).json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schema["title"] = f"{title}:Message:Payload"
        schema["description"] = (
            "Each message's value, validated one by one; an invalid one goes to the dead-letter "
            "topic with the error."
        )
        schemas[f"{title}:Message:Payload"] = schema
    return yaml.safe_dump(document, sort_keys=True, allow_unicode=True)


def asyncapi(
    check: Annotated[
        bool, typer.Option(help="Fail if a committed document is out of date.")
    ] = False,
) -> None:
    """Generate each service's AsyncAPI document into services/<name>/asyncapi.yaml."""
    stale = []
    for service in SERVICES:
        text = asyncio.run(generate(service))
        path = document_path(service)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(ROOT)))
            continue
        path.write_text(text, encoding="utf-8")
        console.print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        console.print(f"[red]out of date:[/red] {', '.join(stale)}: run `billing asyncapi`")
        raise typer.Exit(1)
