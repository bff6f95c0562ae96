"""``GET /v1/bills``: the portal's operator tokens read the loaded bills; nothing else does."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from billing_ingest.adapters.bill_registry import BILLS, MongoBillRegistry
from billing_ingest.entrypoints.bills_http import AUDIENCE, bills_api
from billing_runtime.signed_tokens import sign_scope

KEY = b"ingest-portal-signing-key-0123456789ab"
BILL: dict[str, Any] = {
    "_id": "bill-1",
    "file_name": "focus_sample.csv",
    "format": "focus",
    "status": "processed",
    "rows_read": 10,
    "rows_accepted": 9,
    "rows_rejected": 1,
    "summary": {"billing_periods": ["2024-09"]},
}


async def list_bills(limit: int, period: str | None) -> list[dict[str, Any]]:
    periods = ["2024-09"]  # BILL's
    return [BILL][:limit] if period in (None, *periods) else []


def token(scope: str, audience: str = AUDIENCE, key: bytes = KEY) -> dict[str, str]:
    signed = sign_scope(key, scope=scope, user="op", audience=audience, now=time.time(), seconds=60)
    return {"Authorization": f"Bearer {signed}"}


async def test_operators_read_the_bills_and_no_one_else() -> None:
    app = bills_api(list_bills, signing_key=KEY)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        answer = await client.get("/v1/bills", headers=token("operator"))
        assert answer.status_code == 200
        assert answer.json() == [
            {"bill_id": "bill-1", "file_name": "focus_sample.csv", "format": "focus",
             "status": "processed", "rows_read": 10, "rows_accepted": 9, "rows_rejected": 1,
             "billing_periods": ["2024-09"]}
        ]  # fmt: skip
        only = await client.get("/v1/bills?period=2024-10", headers=token("operator"))
        assert (only.status_code, only.json()) == (200, [])
        bad = await client.get("/v1/bills?period=2024-9", headers=token("operator"))
        assert bad.status_code == 422
        assert (await client.get("/v1/bills", headers=token("customer:a"))).status_code == 403
        for refused in (
            {},
            token("operator", audience="billing-invoicing"),  # a token for another API
            token("operator", key=KEY[::-1]),
        ):
            assert (await client.get("/v1/bills", headers=refused)).status_code == 401
    no_key = bills_api(list_bills, signing_key=None)
    transport = httpx.ASGITransport(app=no_key)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        assert (await client.get("/v1/bills", headers=token("operator"))).status_code == 401


@pytest.mark.integration
async def test_the_registry_lists_the_bills_of_a_period_newest_first(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    await mongo_db[BILLS].insert_many(
        [
            {"_id": "old", "created_at": 1, "summary": {"billing_periods": ["2024-08", "2024-09"]}},
            {"_id": "new", "created_at": 2, "summary": {"billing_periods": ["2024-09"]}},
            {"_id": "other", "created_at": 3, "summary": {"billing_periods": ["2024-10"]}},
        ]
    )
    registry = MongoBillRegistry(mongo_db)
    assert [b["_id"] for b in await registry.list_bills(10, "2024-09")] == ["new", "old"]
    assert [b["_id"] for b in await registry.list_bills(10)] == ["other", "new", "old"]
    assert [b["_id"] for b in await registry.list_bills(1, "2024-08")] == ["old"]
