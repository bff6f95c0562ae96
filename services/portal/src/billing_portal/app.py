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
from billing_runtime.service import make_mongo_client

HEALTH_TIMEOUT_SECONDS = 3.0


def account_ports(db: AsyncDatabase[dict[str, Any]]) -> AccountPorts:
    """The account use cases' ports over the portal's own collections."""
    return AccountPorts(MongoUserStore(db), MongoFailureCounter(db), Argon2Passwords())


def create_app(settings: PortalSettings | None = None) -> FastAPI:
    """The portal as an ASGI app (pages, /static, /health, /live)."""
    settings = settings or PortalSettings()
    mongo = make_mongo_client(settings.mongodb_url)
    db = mongo[settings.mongodb_database]
    client = httpx.AsyncClient(timeout=30.0)
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
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()
            await mongo.close()

    app.router.lifespan_context = lifespan
    return app
