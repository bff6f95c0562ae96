"""Composition root of the portal: ``python -m billing_portal`` runs it (its wiring, shared with
the ``billing users`` commands, is in ``bootstrap.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from billing_portal.bootstrap import account_ports, audit_trail, billing_api
from billing_portal.entrypoints.web import portal_app
from billing_portal.settings import PortalSettings
from billing_runtime.kafka import EventPublisher
from billing_runtime.mongo import make_mongo_client

HEALTH_TIMEOUT_SECONDS = 3.0


def create_app(settings: PortalSettings | None = None) -> FastAPI:
    """The portal as an ASGI app (pages, /static, /health, /live)."""
    settings = settings or PortalSettings()
    mongo = make_mongo_client(settings.mongodb_url)
    db = mongo[settings.mongodb_database]
    client = httpx.AsyncClient(timeout=30.0)
    publisher = EventPublisher(settings.kafka_bootstrap_servers, "billing-portal")
    api = billing_api(client, settings)

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
