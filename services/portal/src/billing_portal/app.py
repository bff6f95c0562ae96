"""Composition root of the portal: ``python -m billing_portal`` runs it; the ``billing users``
commands use :func:`account_ports` from here too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from billing_portal.adapters.billing_api import HttpBillingApi
from billing_portal.adapters.passwords import Argon2Passwords
from billing_portal.adapters.user_repo import MongoFailureCounter, MongoUserStore
from billing_portal.entrypoints.web import portal_app
from billing_portal.service.accounts import AccountPorts
from billing_portal.settings import PortalSettings
from billing_runtime.audit import KafkaAuditTrail
from billing_runtime.kafka import EventPublisher
from billing_runtime.service import make_mongo_client

HEALTH_TIMEOUT_SECONDS = 3.0
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


def create_app(settings: PortalSettings | None = None) -> FastAPI:
    """The portal as an ASGI app (pages, /static, /health, /live)."""
    settings = settings or PortalSettings()
    mongo = make_mongo_client(settings.mongodb_url)
    db = mongo[settings.mongodb_database]
    client = httpx.AsyncClient(timeout=30.0)
    publisher = EventPublisher(settings.kafka_bootstrap_servers, "billing-portal")
    api = HttpBillingApi(
        client,
        invoicing_url=settings.invoicing_url,
        ingest_url=settings.ingest_url,
        key=settings.signing_key(),
        token_seconds=settings.api_token_seconds,
    )

    async def health() -> dict[str, str]:
        found = {}
        try:
            await asyncio.wait_for(db.command("ping"), HEALTH_TIMEOUT_SECONDS)
            found["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure is "not ready"
            found["database"] = f"unreachable: {type(exc).__name__}"
        try:
            answer = await client.get(
                settings.invoicing_url.rstrip("/") + "/live", timeout=HEALTH_TIMEOUT_SECONDS
            )
            found["invoicing"] = "ok" if answer.status_code < 400 else f"{answer.status_code}"
        except httpx.HTTPError as exc:
            found["invoicing"] = f"unreachable: {type(exc).__name__}"
        return found

    app = portal_app(
        accounts=account_ports(db),
        api=api,
        session_key=settings.cookie_key(),
        secure_cookies=not settings.local_dev,
        session_minutes=settings.session_minutes,
        health=health,
        audit=audit_trail(settings, publisher),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        try:
            yield
        finally:
            await publisher.stop()
            await client.aclose()
            await mongo.close()

    app.router.lifespan_context = lifespan
    return app
