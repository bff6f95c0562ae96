"""Wiring of the webhooks service's adapters into its use cases, for the service and the
``billing webhooks``/``billing audit`` commands alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_runtime.mongo import command_database
from billing_webhooks.adapters.audit_log import MongoAuditLog
from billing_webhooks.adapters.http_sender import HttpWebhookSender
from billing_webhooks.adapters.mailer import SmtpOperatorAlerts
from billing_webhooks.adapters.mongo import MongoDeliveries, MongoEndpoints
from billing_webhooks.service.deliver import WebhookPorts
from billing_webhooks.settings import WebhooksSettings


@dataclass(frozen=True)
class WebhookStores:
    """The service's collections: endpoints, the delivery queue and log, the audit trail."""

    endpoints: MongoEndpoints
    deliveries: MongoDeliveries
    audit: MongoAuditLog

    async def ensure_indexes(self) -> None:
        """The indexes the queue and the audit trail need."""
        await self.deliveries.ensure_indexes()
        await self.audit.ensure_indexes()


def stores(db: AsyncDatabase[dict[str, Any]]) -> WebhookStores:
    """The stores over MongoDB."""
    return WebhookStores(MongoEndpoints(db), MongoDeliveries(db), MongoAuditLog(db))


def http_sender(settings: WebhooksSettings) -> HttpWebhookSender:
    """The HTTPS client deliveries go through (close it with ``aclose``)."""
    return HttpWebhookSender(settings.request_timeout_seconds)


def operator_alerts(settings: WebhooksSettings) -> SmtpOperatorAlerts:
    """Emails to the operators (an endpoint disabled), over the SMTP server the settings name."""
    password = settings.smtp_password
    return SmtpOperatorAlerts(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.sender,
        operators=settings.operators,
        username=settings.smtp_username,
        password=None if password is None else password.get_secret_value(),
        start_tls=settings.smtp_start_tls,
    )


def build_ports(
    kept: WebhookStores, settings: WebhooksSettings, sender: HttpWebhookSender
) -> WebhookPorts:
    """The delivery use cases' ports: the stores, the sender, the operators' alerts."""
    return WebhookPorts(
        endpoints=kept.endpoints,
        deliveries=kept.deliveries,
        sender=sender,
        alerts=operator_alerts(settings),
    )


@asynccontextmanager
async def cli_stores(settings: WebhooksSettings) -> AsyncIterator[WebhookStores]:
    """The stores for one ``billing webhooks``/``billing audit`` command."""
    async with command_database(settings) as db:
        yield stores(db)
