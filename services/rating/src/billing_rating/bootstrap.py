"""Wiring of rating's adapters into its use cases, for the service, the ``billing rate`` command
and the benchmarks alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_rating.adapters.catalog import CachedPricingCatalog, MongoPricingCatalog
from billing_rating.adapters.charge_publisher import KafkaChargePublisher
from billing_rating.adapters.rated_store import MongoRatedStore
from billing_rating.adapters.tier_store import MongoTierStore
from billing_rating.ports import ChargePublisher, PricingCatalog, RatedStore, TierStore
from billing_rating.settings import RatingSettings
from billing_runtime.audit import AuditTrail, KafkaAuditTrail
from billing_runtime.kafka import EventPublisher, ensure_topics
from billing_runtime.mongo import make_mongo_client
from billing_schemas.topics import Topic, topic_name

SERVICE = "rating"


@dataclass(frozen=True)
class RatingPorts:
    """What the rating consumer works with: the catalog (cached), the tier and rated stores."""

    catalog: PricingCatalog
    tiers: TierStore
    rated: RatedStore


def build_ports(db: AsyncDatabase[dict[str, Any]], settings: RatingSettings) -> RatingPorts:
    """The consumer's ports over MongoDB; the catalog read through a cache of
    ``catalog_cache_seconds``."""
    return RatingPorts(
        catalog=CachedPricingCatalog(MongoPricingCatalog(db), settings.catalog_cache_seconds),
        tiers=MongoTierStore(db),
        rated=MongoRatedStore(db),
    )


@dataclass
class RerateContext:
    """The ports ``billing rate`` works with."""

    catalog: PricingCatalog
    kept: RatedStore
    publisher: ChargePublisher
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
