"""Composition root of the webhooks service: ``python -m billing_webhooks`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream
from faststream.asgi.types import ASGIApp

from billing_runtime.kafka import Publisher
from billing_runtime.service import Runtime, asgi_app, create_runtime
from billing_webhooks.bootstrap import build_ports, http_sender, stores
from billing_webhooks.entrypoints.consumers import register, register_audit
from billing_webhooks.entrypoints.dispatcher import register_dispatcher
from billing_webhooks.entrypoints.http import webhooks_api
from billing_webhooks.settings import WebhooksSettings

SERVICE = "webhooks"
API_PREFIX = "/v1"


def build(settings: WebhooksSettings, publisher: Publisher | None = None) -> Runtime:
    """Wire the webhooks service: consumers (events, audit), dispatcher, stores, sender,
    alerts (publishing dead letters to Kafka, unless another publisher is given: an in-memory
    one in tests)."""
    runtime, _ = _build(settings, publisher)
    return runtime


def _build(
    settings: WebhooksSettings, publisher: Publisher | None = None
) -> tuple[Runtime, ASGIApp]:
    runtime = create_runtime(SERVICE, settings, publisher)
    kept = stores(runtime.db)
    sender = http_sender(settings)
    ports = build_ports(kept, settings, sender)
    policy = settings.delivery_policy
    runtime.on_startup.append(kept.ensure_indexes)
    register(runtime, settings, ports, policy)
    register_audit(runtime, settings, kept.audit)
    register_dispatcher(runtime, settings, ports, policy)
    runtime.on_shutdown.append(sender.aclose)  # after the dispatcher stopped
    api = webhooks_api(
        tokens=settings.api_scopes(),
        endpoints=kept.endpoints,
        deliveries=kept.deliveries,
        audit=kept.audit,
        allow_http=settings.allow_http_urls,
    )
    return runtime, api


def create_app(settings: WebhooksSettings | None = None) -> AsgiFastStream:
    """The webhooks service as an ASGI app (consumer, dispatcher, the /v1 API, /health,
    /live, /metrics)."""
    runtime, api = _build(settings or WebhooksSettings())
    return asgi_app(runtime, prefixed=[(API_PREFIX, api)])
