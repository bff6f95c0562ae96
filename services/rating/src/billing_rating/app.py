"""Composition root of the rating service: ``python -m billing_rating`` runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from faststream.asgi import AsgiFastStream

from billing_rating.adapters.catalog import CachedPricingCatalog, MongoPricingCatalog
from billing_rating.adapters.charge_publisher import KafkaChargePublisher
from billing_rating.adapters.rated_store import MongoRatedStore
from billing_rating.adapters.tier_store import MongoTierStore
from billing_rating.entrypoints.consumers import register
from billing_rating.settings import RatingSettings
from billing_runtime.audit import AuditTrail, KafkaAuditTrail
from billing_runtime.kafka import EventPublisher, Publisher, ensure_topics
from billing_runtime.service import Runtime, asgi_app, create_runtime, make_mongo_client
from billing_schemas.topics import Topic, topic_name

SERVICE = "rating"


def build(settings: RatingSettings, publisher: Publisher | None = None) -> Runtime:
    """Wire the rating service: catalog reader, tier state store, rated store and consumer
    (publishing to Kafka, unless another publisher is given: an in-memory one in tests)."""
    runtime = create_runtime(SERVICE, settings, publisher)
    db = runtime.db
    catalog = CachedPricingCatalog(MongoPricingCatalog(db), settings.catalog_cache_seconds)
    register(runtime, settings, catalog, MongoTierStore(db), MongoRatedStore(db))
    return runtime


def create_app(settings: RatingSettings | None = None) -> AsgiFastStream:
    """The rating service as an ASGI app (consumers, /health, /live, /metrics)."""
    return asgi_app(build(settings or RatingSettings()))


@dataclass
class RerateContext:
    """The ports ``billing rate`` works with."""

    catalog: MongoPricingCatalog
    kept: MongoRatedStore
    publisher: KafkaChargePublisher
    audit: AuditTrail


@asynccontextmanager
async def rerate_context(settings: RatingSettings | None = None) -> AsyncIterator[RerateContext]:
    """Connect to the database and the broker for one re-rating, and clean up after."""
    settings = settings or RatingSettings()
    client = make_mongo_client(settings.mongodb_url)
    publisher = EventPublisher(settings.kafka_bootstrap_servers, "billing-rating-cli")
    try:
        topic = topic_name(Topic.CHARGE_RATED, settings.topic_namespace)
        await ensure_topics(settings.kafka_bootstrap_servers, [topic])
        await publisher.start()
        db = client[settings.mongodb_database]
        yield RerateContext(
            MongoPricingCatalog(db),
            MongoRatedStore(db),
            KafkaChargePublisher(publisher, settings.topic_namespace),
            KafkaAuditTrail(
                publisher, settings.topic_namespace, SERVICE, settings.kafka_bootstrap_servers
            ),
        )
    finally:
        await publisher.stop()
        await client.close()
