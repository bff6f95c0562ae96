"""Composition root of the ingest service: ``python -m billing_ingest`` runs it."""

from __future__ import annotations

from typing import Any

from faststream.asgi import AsgiFastStream

from billing_ingest.bootstrap import accept_ports, bill_registry
from billing_ingest.domain.access import SourceScope
from billing_ingest.entrypoints.bills_http import bills_api
from billing_ingest.entrypoints.consumers import register
from billing_ingest.entrypoints.http import usage_events_api
from billing_ingest.service.accept_events import EventResult, accept_usage_events
from billing_ingest.settings import IngestSettings
from billing_runtime.kafka import Publisher
from billing_runtime.service import Runtime, asgi_app, create_runtime

SERVICE = "ingest"


def build(settings: IngestSettings, publisher: Publisher | None = None) -> Runtime:
    """Wire the ingest service: upstream usage consumer (publishing to Kafka, unless another
    publisher is given: an in-memory one in tests)."""
    runtime = create_runtime(SERVICE, settings, publisher)
    register(runtime, accept_ports(runtime.db, runtime.publisher, settings))
    return runtime


def create_app(settings: IngestSettings | None = None) -> AsgiFastStream:
    """The ingest service as an ASGI app (consumers, the usage-events API, /health, /live,
    /metrics). Refuses to start (:class:`TokenConfigError`) without a token for the API unless
    anonymous use is allowed explicitly."""
    settings = settings or IngestSettings()
    tokens = settings.usage_api_scopes()
    runtime = build(settings)
    ports = accept_ports(runtime.db, runtime.publisher, settings)

    async def accept(raw_events: list[bytes], scope: SourceScope | None) -> list[EventResult]:
        return await accept_usage_events(
            raw_events, store=ports.store, publisher=ports.publisher, scope=scope
        )

    api = usage_events_api(
        accept,
        tokens=tokens,
        allow_anonymous=settings.allow_anonymous,
        max_events=settings.max_events_per_request,
        max_bytes=settings.max_request_bytes,
    )
    paths = ("/v1/usage-events", "/v1/docs", "/v1/openapi.json")
    routes = [(path, api) for path in paths]

    async def list_bills(limit: int, period: str | None) -> list[dict[str, Any]]:
        return await bill_registry(runtime.db).list_bills(limit, period)

    bills = bills_api(list_bills, signing_key=settings.portal_signing_key())
    return asgi_app(runtime, extra_routes=[*routes, ("/v1/bills", bills)])
