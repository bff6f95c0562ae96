"""Composition root of the rating service: ``python -m billing_rating`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from billing_rating.adapters.catalog import MongoPricingCatalog
from billing_rating.adapters.tier_store import MongoTierStore
from billing_rating.entrypoints.consumers import register
from billing_rating.settings import RatingSettings
from billing_runtime.service import Runtime, asgi_app, create_runtime

SERVICE = "rating"


def build(settings: RatingSettings) -> Runtime:
    """Wire the rating service: catalog reader, tier state store and consumer."""
    runtime = create_runtime(SERVICE, settings)
    register(runtime, settings, MongoPricingCatalog(runtime.db), MongoTierStore(runtime.db))
    return runtime


def create_app(settings: RatingSettings | None = None) -> AsgiFastStream:
    """The rating service as an ASGI app (consumers, /health, /live, /metrics)."""
    return asgi_app(build(settings or RatingSettings()))
