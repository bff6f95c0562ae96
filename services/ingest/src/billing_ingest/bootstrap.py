"""Wiring of ingest's adapters into its use cases, for the service, the ``billing ingest`` and
``billing bills`` commands and the benchmarks alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_ingest.adapters.bill_registry import MongoBillRegistry
from billing_ingest.adapters.catalog_currency import MongoCatalogCurrencies
from billing_ingest.adapters.publisher import KafkaUsagePublisher, ingest_topics
from billing_ingest.adapters.submitted_events import MongoSubmittedEvents
from billing_ingest.ports import (
    BillRegistry,
    CatalogCurrencies,
    EventsPublisher,
    SubmittedEvents,
    UsagePublisher,
)
from billing_ingest.settings import IngestSettings
from billing_runtime.kafka import EventPublisher, Publisher, ensure_topics
from billing_runtime.mongo import command_database, make_mongo_client


@dataclass(frozen=True)
class LoadPorts:
    """What loading a bill (``load_bill``) works with."""

    publisher: UsagePublisher
    registry: BillRegistry
    catalog: CatalogCurrencies


@dataclass(frozen=True)
class AcceptPorts:
    """What accepting upstream usage events (``accept_usage_events``) works with."""

    store: SubmittedEvents
    publisher: EventsPublisher


def load_ports(
    db: AsyncDatabase[dict[str, Any]], publisher: Publisher, settings: IngestSettings
) -> LoadPorts:
    """Loading's ports over MongoDB (the bill registry, the catalog's currencies) and the
    broker."""
    return LoadPorts(
        publisher=KafkaUsagePublisher(publisher, settings.topic_namespace),
        registry=MongoBillRegistry(db),
        catalog=MongoCatalogCurrencies(db),
    )


def accept_ports(
    db: AsyncDatabase[dict[str, Any]], publisher: Publisher, settings: IngestSettings
) -> AcceptPorts:
    """The usage-events consumer's and API's ports over MongoDB and the broker."""
    return AcceptPorts(
        store=MongoSubmittedEvents(db),
        publisher=KafkaUsagePublisher(publisher, settings.topic_namespace),
    )


def bill_registry(db: AsyncDatabase[dict[str, Any]]) -> MongoBillRegistry:
    """The bill registry, with the reads of ``billing bills`` and ``GET /v1/bills``."""
    return MongoBillRegistry(db)


@dataclass(frozen=True)
class LoadContext:
    """A connected :class:`LoadPorts`, and the database it writes to."""

    ports: LoadPorts
    db: AsyncDatabase[dict[str, Any]]


@asynccontextmanager
async def load_context(
    settings: IngestSettings,
    publisher: Publisher | None = None,
    *,
    client_id: str = "billing-cli-ingest",
) -> AsyncIterator[LoadContext]:
    """Connect to the database and the broker (its topics made if missing) for one load, and
    clean up after; ``publisher``: another one than Kafka's (an in-memory one in tests), which
    the caller starts and stops."""
    own = publisher is None
    if publisher is None:
        await ensure_topics(
            settings.kafka_bootstrap_servers, ingest_topics(settings.topic_namespace)
        )
        publisher = EventPublisher(settings.kafka_bootstrap_servers, client_id)
        await publisher.start()
    client = make_mongo_client(settings.mongodb_url)
    try:
        db = client[settings.mongodb_database]
        registry = bill_registry(db)
        await registry.ensure_indexes()
        yield LoadContext(load_ports(db, publisher, settings), db)
    finally:
        if own:
            await publisher.stop()
        await client.close()


@asynccontextmanager
async def registry_context(settings: IngestSettings) -> AsyncIterator[MongoBillRegistry]:
    """The bill registry for one ``billing bills`` command."""
    async with command_database(settings) as db:
        yield bill_registry(db)
