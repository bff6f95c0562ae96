"""Composition root of the rating service: ``python -m billing_rating`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from billing_rating.bootstrap import SERVICE, build_ports
from billing_rating.entrypoints.consumers import register
from billing_rating.settings import RatingSettings
from billing_runtime.kafka import Publisher
from billing_runtime.service import Runtime, asgi_app, create_runtime


def build(settings: RatingSettings, publisher: Publisher | None = None) -> Runtime:
    """Wire the rating service: catalog reader, tier state store, rated store and consumer
    (publishing to Kafka, unless another publisher is given: an in-memory one in tests)."""
    runtime = create_runtime(SERVICE, settings, publisher)
    ports = build_ports(runtime.db, settings)
    register(runtime, settings, ports.catalog, ports.tiers, ports.rated)
    return runtime


def create_app(settings: RatingSettings | None = None) -> AsgiFastStream:
    """The rating service as an ASGI app (consumers, /health, /live, /metrics)."""
    return asgi_app(build(settings or RatingSettings()))
