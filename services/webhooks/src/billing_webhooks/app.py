"""Composition root of the webhooks service: ``python -m billing_webhooks`` runs it."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream
from faststream.asgi.types import ASGIApp

from billing_runtime.service import Runtime, asgi_app, create_runtime
from billing_webhooks.adapters.audit_log import MongoAuditLog
from billing_webhooks.adapters.http_sender import HttpWebhookSender
from billing_webhooks.adapters.mailer import SmtpOperatorAlerts
from billing_webhooks.adapters.mongo import MongoDeliveries, MongoEndpoints
from billing_webhooks.entrypoints.consumers import register, register_audit
from billing_webhooks.entrypoints.dispatcher import register_dispatcher
from billing_webhooks.entrypoints.http import webhooks_api
from billing_webhooks.service.deliver import WebhookPorts
from billing_webhooks.settings import WebhooksSettings

SERVICE = "webhooks"
API_PREFIX = "/v1"


def build(settings: WebhooksSettings) -> Runtime:
    """Wire the webhooks service: consumers (events, audit), dispatcher, stores, sender,
    alerts."""
    runtime, _ = _build(settings)
    return runtime


def _build(settings: WebhooksSettings) -> tuple[Runtime, ASGIApp]:
    runtime = create_runtime(SERVICE, settings)
    password = settings.smtp_password
    deliveries = MongoDeliveries(runtime.db)
    sender = HttpWebhookSender(settings.request_timeout_seconds)
    ports = WebhookPorts(
        endpoints=MongoEndpoints(runtime.db),
        deliveries=deliveries,
        sender=sender,
        alerts=SmtpOperatorAlerts(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.sender,
            operators=settings.operators,
            username=settings.smtp_username,
            password=None if password is None else password.get_secret_value(),
            start_tls=settings.smtp_start_tls,
        ),
    )
    policy = settings.delivery_policy
    audit = MongoAuditLog(runtime.db)
    runtime.on_startup.append(deliveries.ensure_indexes)
    runtime.on_startup.append(audit.ensure_indexes)
    register(runtime, settings, ports, policy)
    register_audit(runtime, settings, audit)
    register_dispatcher(runtime, settings, ports, policy)
    runtime.on_shutdown.append(sender.aclose)  # after the dispatcher stopped
    api = webhooks_api(
        tokens=settings.api_scopes(),
        endpoints=ports.endpoints,
        deliveries=deliveries,
        audit=audit,
        allow_http=settings.allow_http_urls,
    )
    return runtime, api


def create_app(settings: WebhooksSettings | None = None) -> AsgiFastStream:
    """The webhooks service as an ASGI app (consumer, dispatcher, the /v1 API, /health,
    /live, /metrics)."""
    runtime, api = _build(settings or WebhooksSettings())
    return asgi_app(runtime, prefixed=[(API_PREFIX, api)])
