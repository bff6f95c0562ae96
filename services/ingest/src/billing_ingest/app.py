"""Composition root of the ingest service: ``python -m billing_ingest`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from billing_ingest.entrypoints.consumers import register
from billing_ingest.settings import IngestSettings
from billing_runtime.service import Runtime, asgi_app, create_runtime

SERVICE = "ingest"


def build(settings: IngestSettings) -> Runtime:
    """Wire the ingest service: upstream usage consumer."""
    runtime = create_runtime(SERVICE, settings)
    register(runtime, settings)
    return runtime


def create_app(settings: IngestSettings | None = None) -> AsgiFastStream:
    """The ingest service as an ASGI app (consumers, /health, /live, /metrics)."""
    return asgi_app(build(settings or IngestSettings()))
