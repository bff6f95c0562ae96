"""Upstream usage events: a verdict per event (accepted, duplicate, conflict, rejected).

The use case with in-memory fakes, and the HTTP batch endpoint in front of it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from billing_ingest.adapters.publisher import InMemoryUsagePublisher
from billing_ingest.adapters.submitted_events import InMemorySubmittedEvents
from billing_ingest.entrypoints.http import usage_events_api
from billing_ingest.service.accept_events import EventResult, accept_usage_events


def event(event_id: str = "e-1", **changes: Any) -> dict[str, Any]:
    """A valid upstream usage event; ``changes`` replace or (None) remove fields."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "metering/openstack-region-1",
        "type": "com.example.usage.v1",
        "subject": "project-42",
        "time": "2024-09-02T10:00:00Z",
        "data": {
            "provider": "OpenStack",
            "sub_account_id": "project-42",
            "service_name": "compute",
            "sku_id": "m1.small",
            "quantity": "3",
            "unit": "hour",
            "cost": "0.36",
            "currency": "EUR",
            "charge_period_start": "2024-09-02T09:00:00Z",
            "charge_period_end": "2024-09-02T10:00:00Z",
        },
    }
    for key, value in changes.items():
        target = body["data"] if key in body["data"] else body
        if value is None:
            target.pop(key)
        else:
            target[key] = value
    return body


def raw(*events: dict[str, Any] | str) -> list[bytes]:
    return [(e if isinstance(e, str) else json.dumps(e)).encode() for e in events]


async def accept(
    events: list[bytes], store: InMemorySubmittedEvents, publisher: InMemoryUsagePublisher
) -> list[EventResult]:
    return await accept_usage_events(events, store=store, publisher=publisher)


async def test_each_event_gets_its_own_verdict_and_bad_ones_never_reject_their_neighbours() -> None:
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()
    results = await accept(
        raw(
            event("e-1"),
            event("e-2", time=None),  # no time: rejected, not defaulted
            event("e-3", source=None),  # no producer: rejected
            event("e-4", cost=0.36),  # a float amount
            "{not json",
            event("e-5", currency="XYZ"),
            event("e-6", quantity="5"),
        ),
        store,
        publisher,
    )
    assert [r.verdict for r in results] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert (results[1].event_id, results[1].field) == ("e-2", "time")
    assert "Field required" in (results[1].reason or "")
    assert results[2].field == "source"
    assert results[3].field == "data.cost"
    assert "float" in (results[3].reason or "")
    assert results[4].field is None
    assert "Invalid JSON" in (results[4].reason or "")
    assert results[5].field == "data.currency"
    published = [e.data for _, e in publisher.usage_events]
    assert [(r.sub_account_id, r.billed_cost, r.pricing_quantity) for r in published] == [
        ("project-42", Decimal("0.36"), Decimal(3)),
        ("project-42", Decimal("0.36"), Decimal(5)),
    ]
    rejected = [e.data for _, e in publisher.rejected_events]
    assert len(rejected) == 5
    assert rejected[0].column == "time"
    assert rejected[0].reason.startswith("rejected: time: Field required")
    assert '"id": "e-2"' in (rejected[0].raw["event"] or "")


async def test_the_same_event_again_is_a_duplicate_and_other_content_under_its_id_a_conflict() -> (
    None
):
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()
    [first] = await accept(raw(event("e-1")), store, publisher)
    # redelivered (Kafka at-least-once), and once more in the same batch with a new event
    again = await accept(raw(event("e-1"), event("e-1"), event("e-9")), store, publisher)
    assert [r.verdict for r in again] == ["duplicate", "duplicate", "accepted"]
    assert again[0].record_id == first.record_id
    # the same id and source, another amount: reported, not a silent replace
    [conflict] = await accept(raw(event("e-1", cost="9.99")), store, publisher)
    assert conflict.verdict == "conflict"
    assert conflict.record_id == first.record_id
    assert "already accepted with other content" in (conflict.reason or "")
    ids = [e.data.record_id for _, e in publisher.usage_events]
    # e-1 published on first sight and once on redelivery (same id: stored once downstream)
    assert ids == [first.record_id, first.record_id, again[2].record_id]
    costs = {e.data.billed_cost for _, e in publisher.usage_events}
    assert costs == {Decimal("0.36")}  # 9.99 never went out
    [(_, rejection)] = publisher.rejected_events
    assert rejection.data.reason.startswith("conflict: ")
    # the same id from another source is another event
    [other] = await accept(raw(event("e-1", source="metering/region-2")), store, publisher)
    assert other.verdict == "accepted"
    assert other.record_id != first.record_id


async def test_two_contents_for_one_id_in_one_batch_keep_the_first() -> None:
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()
    results = await accept(raw(event("e-1"), event("e-1", cost="1.00")), store, publisher)
    assert [r.verdict for r in results] == ["accepted", "conflict"]
    assert [e.data.billed_cost for _, e in publisher.usage_events] == [Decimal("0.36")]


async def post(app: Any, body: Any, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest"
    ) as client:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await client.post("/v1/usage-events", content=content, headers=headers)


async def test_the_http_endpoint_answers_a_verdict_per_event() -> None:
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()

    async def use_case(events: list[bytes]) -> list[EventResult]:
        return await accept(events, store, publisher)

    app = usage_events_api(use_case, api_token=None, max_events=3)
    answer = await post(app, [event("e-1"), event("e-2", time=None), event("e-1", cost="2")])
    assert answer.status_code == 200
    body = answer.json()
    assert (body["accepted"], body["duplicate"], body["conflict"], body["rejected"]) == (1, 0, 1, 1)
    assert [(r["index"], r["verdict"], r["id"]) for r in body["results"]] == [
        (0, "accepted", "e-1"),
        (1, "rejected", "e-2"),
        (2, "conflict", "e-1"),
    ]
    assert body["results"][1]["field"] == "time"
    assert (await post(app, {"id": "e-1"})).status_code == 400
    assert (await post(app, b"[{")).status_code == 400
    too_many = await post(app, [event(f"e-{i}") for i in range(4)])
    assert too_many.status_code == 413
    assert "at most 3" in too_many.json()["detail"]
    assert len(publisher.usage_events) == 1  # nothing from the refused requests


async def test_the_http_endpoint_wants_the_bearer_token_when_one_is_set() -> None:
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()

    async def use_case(events: list[bytes]) -> list[EventResult]:
        return await accept(events, store, publisher)

    app = usage_events_api(use_case, api_token="s3cret", max_events=10)
    assert (await post(app, [event()])).status_code == 401
    assert (await post(app, [event()], token="wrong")).status_code == 401
    assert (await post(app, [event()], token="s3cret")).status_code == 200
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest"
    ) as client:
        document = (await client.get("/v1/openapi.json")).json()
    body = document["paths"]["/v1/usage-events"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/UsageSubmitted"
    }
    assert "SubmittedUsage" in document["components"]["schemas"]
