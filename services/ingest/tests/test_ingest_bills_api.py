"""``GET /v1/bills``: the portal's operator tokens read the loaded bills; nothing else does."""

from __future__ import annotations

import time
from typing import Any

import httpx

from billing_ingest.entrypoints.bills_http import AUDIENCE, bills_api
from billing_runtime.signed_tokens import sign_scope

KEY = b"ingest-portal-signing-key-0123456789ab"
BILL = {
    "_id": "bill-1",
    "file_name": "focus_sample.csv",
    "format": "focus",
    "status": "processed",
    "rows_read": 10,
    "rows_accepted": 9,
    "rows_rejected": 1,
    "summary": {"billing_periods": ["2024-09"]},
}


async def list_bills(limit: int) -> list[dict[str, Any]]:
    return [BILL][:limit]


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
