"""Composition root of the rating service: ``python -m billing_rating`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from billing_rating.adapters.catalog import MongoPricingCatalog
from billing_rating.entrypoints.consumers import register
from billing_rating.settings import RatingSettings
from billing_runtime.service import asgi_app, create_runtime

SERVICE = "rating"


def create_app(settings: RatingSettings | None = None) -> AsgiFastStream:
    """Wire the rating service: catalog reader, consumer, health and metrics."""
    settings = settings or RatingSettings()
    runtime = create_runtime(SERVICE, settings)
    register(runtime, settings, MongoPricingCatalog(runtime.db))
    return asgi_app(runtime)
