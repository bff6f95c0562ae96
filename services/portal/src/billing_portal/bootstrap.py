"""Wiring of the portal's adapters into its use cases, for the portal and the ``billing users``
commands alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from billing_portal.adapters.billing_api import HttpBillingApi
from billing_portal.adapters.passwords import Argon2Passwords
from billing_portal.adapters.user_repo import MongoFailureCounter, MongoUserStore
from billing_portal.service.accounts import AccountPorts
from billing_portal.settings import PortalSettings
from billing_runtime.audit import KafkaAuditTrail
from billing_runtime.kafka import EventPublisher
from billing_runtime.mongo import command_database, make_mongo_client

SERVICE = "portal"


def account_ports(db: AsyncDatabase[dict[str, Any]]) -> AccountPorts:
    """The account use cases' ports over the portal's own collections."""
    return AccountPorts(MongoUserStore(db), MongoFailureCounter(db), Argon2Passwords())


def audit_trail(settings: PortalSettings, publisher: EventPublisher) -> KafkaAuditTrail:
    """Where changes to the portal's users are recorded (``billing.audit.recorded.v1``)."""
    return KafkaAuditTrail(
        publisher, settings.topic_namespace, SERVICE, settings.kafka_bootstrap_servers
    )


@asynccontextmanager
async def accounts_context(settings: PortalSettings) -> AsyncIterator[AccountPorts]:
    """The account ports alone, for a ``billing users`` command that only reads."""
    async with command_database(settings) as db:
        yield account_ports(db)


@asynccontextmanager
async def user_admin(
    settings: PortalSettings,
) -> AsyncIterator[tuple[AccountPorts, KafkaAuditTrail]]:
    """The account ports and the audit trail for one ``billing users`` command."""
    client = make_mongo_client(settings.mongodb_url)
    publisher = EventPublisher(settings.kafka_bootstrap_servers, "billing-portal-cli")
    try:
        await publisher.start()
        yield account_ports(client[settings.mongodb_database]), audit_trail(settings, publisher)
    finally:
        await publisher.stop()
        await client.close()


def billing_api(client: httpx.AsyncClient, settings: PortalSettings) -> HttpBillingApi:
    """Invoicing's ``/v1`` and ingest's bills, called with a short-lived token signed per
    request."""
    return HttpBillingApi(
        client,
        invoicing_url=settings.invoicing_url,
        ingest_url=settings.ingest_url,
        key=settings.signing_key(),
        token_seconds=settings.api_token_seconds,
    )
