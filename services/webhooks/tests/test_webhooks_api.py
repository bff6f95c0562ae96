"""The webhooks HTTP API: token scopes as in invoicing, endpoints, deliveries (in-memory stores)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from webhooks_test_support import T0, finalized

from billing_runtime.access import parse_tokens, token_name
from billing_webhooks.adapters.memory import InMemoryDeliveries, InMemoryEndpoints
from billing_webhooks.domain.deliveries import RetryPolicy, deliveries_for
from billing_webhooks.domain.messages import message_for
from billing_webhooks.entrypoints.http import webhooks_api

OPERATOR = "op-token-0123456789abcdef"
ACME = "acme-token-0123456789abcdef"
GLOBEX = "globex-token-0123456789abcdef"


@pytest.fixture
def stores() -> tuple[InMemoryEndpoints, InMemoryDeliveries]:
    return InMemoryEndpoints(), InMemoryDeliveries()


@pytest.fixture
async def client(
    stores: tuple[InMemoryEndpoints, InMemoryDeliveries],
) -> AsyncIterator[httpx.AsyncClient]:
    endpoints, deliveries = stores
    app = webhooks_api(
        tokens=parse_tokens(
            {OPERATOR: "operator", ACME: "customer:acme", GLOBEX: "customer:globex"}
        ),
        endpoints=endpoints,
        deliveries=deliveries,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://webhooks") as http:
        yield http


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_token_or_an_unknown_one_is_refused(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/webhooks/endpoints")).status_code == 401
    answer = await client.get("/v1/webhooks/endpoints", headers=_auth("x" * 30))
    assert answer.status_code == 401


async def test_a_customer_registers_for_itself_whatever_it_asks_and_sees_only_its_own(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/v1/webhooks/endpoints",
        headers=_auth(ACME),
        json={
            "url": "https://erp.acme.example/hooks",
            "customer_id": "globex",
            "event_types": ["invoice.paid"],
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["customer_id"] == "acme"
    assert body["secret"].startswith("whsec_")
    assert body["event_types"] == ["invoice.paid"]
    assert body["created_by"] == token_name(ACME)
    endpoint_id = body["endpoint_id"]
    # the secret is shown once
    again = await client.get(f"/v1/webhooks/endpoints/{endpoint_id}", headers=_auth(ACME))
    assert again.status_code == 200
    assert "secret" not in again.json()
    # globex sees nothing of it, as if it did not exist
    for path in ("", "/deliveries"):
        answer = await client.get(
            f"/v1/webhooks/endpoints/{endpoint_id}{path}", headers=_auth(GLOBEX)
        )
        assert answer.status_code == 404
    refused = await client.post(
        f"/v1/webhooks/endpoints/{endpoint_id}/disable", headers=_auth(GLOBEX)
    )
    assert refused.status_code == 404
    assert (await client.get("/v1/webhooks/endpoints", headers=_auth(GLOBEX))).json() == []
    # globex asking for acme's list gets its own (empty) list, never acme's
    listed = await client.get(
        "/v1/webhooks/endpoints", params={"customer_id": "acme"}, headers=_auth(GLOBEX)
    )
    assert listed.json() == []
    # the operator sees it; acme disables it
    ops = await client.get("/v1/webhooks/endpoints", headers=_auth(OPERATOR))
    assert [e["endpoint_id"] for e in ops.json()] == [endpoint_id]
    done = await client.post(
        f"/v1/webhooks/endpoints/{endpoint_id}/disable",
        headers=_auth(ACME),
        json={"reason": "new ERP"},
    )
    assert done.status_code == 200
    assert done.json()["enabled"] is False
    assert done.json()["disabled_reason"] == f"new ERP ({token_name(ACME)})"
    enabled = await client.post(f"/v1/webhooks/endpoints/{endpoint_id}/enable", headers=_auth(ACME))
    assert enabled.json()["enabled"] is True


async def test_bad_urls_and_event_types_are_refused_with_the_reason(
    client: httpx.AsyncClient,
) -> None:
    plain = await client.post(
        "/v1/webhooks/endpoints", headers=_auth(OPERATOR), json={"url": "http://erp.example/h"}
    )
    assert plain.status_code == 422
    assert "https" in plain.json()["detail"]
    unknown = await client.post(
        "/v1/webhooks/endpoints",
        headers=_auth(OPERATOR),
        json={"url": "https://erp.example/h", "event_types": ["invoice.payed"]},
    )
    assert unknown.status_code == 422


async def test_deliveries_and_their_attempts_are_listed(
    client: httpx.AsyncClient, stores: tuple[InMemoryEndpoints, InMemoryDeliveries]
) -> None:
    endpoints, deliveries = stores
    created = await client.post(
        "/v1/webhooks/endpoints",
        headers=_auth(OPERATOR),
        json={"url": "https://erp.example/h", "customer_id": "acme"},
    )
    endpoint_id = created.json()["endpoint_id"]
    endpoint = await endpoints.get(endpoint_id)
    assert endpoint is not None
    policy = RetryPolicy(base=T0 - T0, maximum=T0 - T0, max_attempts=1)
    await deliveries.enqueue(deliveries_for(message_for(finalized()), [endpoint], T0, policy))
    listed = await client.get(
        f"/v1/webhooks/endpoints/{endpoint_id}/deliveries", headers=_auth(ACME)
    )
    assert listed.status_code == 200
    [row] = listed.json()
    assert row["message_id"] == finalized().event_id
    assert row["state"] == "pending"
    one = await client.get(
        f"/v1/webhooks/endpoints/{endpoint_id}/deliveries/{finalized().event_id}",
        headers=_auth(ACME),
    )
    assert one.status_code == 200
    assert one.json()["attempt_log"] == []
    assert '"total":"120.00"' in one.json()["body"]
    missing = await client.get(
        f"/v1/webhooks/endpoints/{endpoint_id}/deliveries/nope", headers=_auth(ACME)
    )
    assert missing.status_code == 404
