"""Composition root of the ingest service: ``python -m billing_ingest`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from billing_ingest.entrypoints.consumers import register
from billing_ingest.settings import IngestSettings
from billing_runtime.service import asgi_app, create_runtime

SERVICE = "ingest"


def create_app(settings: IngestSettings | None = None) -> AsgiFastStream:
    """Wire the ingest service: upstream usage consumer, health and metrics."""
    settings = settings or IngestSettings()
    runtime = create_runtime(SERVICE, settings)
    register(runtime, settings)
    return asgi_app(runtime)
