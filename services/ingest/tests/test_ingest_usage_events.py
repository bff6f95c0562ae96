"""Upstream usage events: a verdict per event (accepted, duplicate, conflict, rejected).

The use case with in-memory fakes, and the HTTP batch endpoint in front of it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing_ingest.adapters.memory import InMemorySubmittedEvents, InMemoryUsagePublisher
from billing_ingest.app import create_app
from billing_ingest.domain.access import SourceScope, TokenConfigError, authenticate, parse_tokens
from billing_ingest.entrypoints.http import usage_events_api
from billing_ingest.service.accept_events import EventResult, accept_usage_events
from billing_ingest.settings import IngestSettings


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
    events: list[bytes],
    store: InMemorySubmittedEvents,
    publisher: InMemoryUsagePublisher,
    scope: SourceScope | None = None,
) -> list[EventResult]:
    return await accept_usage_events(events, store=store, publisher=publisher, scope=scope)


REGION_1 = "region-1-token-0123456789abcdef"
"""The token of the OpenStack region 1 metering: its source, OpenStack, two projects."""

TOKENS = parse_tokens(
    {
        REGION_1: {
            "name": "metering region 1",
            "sources": ["metering/openstack-region-1"],
            "providers": ["OpenStack"],
            "accounts": ["project-42", "project-43"],
        },
        "marketplace-token-0123456789abcdef": {
            "sources": ["marketplace"],
            "providers": ["*"],
            "accounts": ["*"],
        },
    }
)


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

    async def use_case(events: list[bytes], scope: SourceScope | None) -> list[EventResult]:
        return await accept(events, store, publisher, scope)

    app = usage_events_api(use_case, tokens=TOKENS, max_events=3, max_bytes=1024 * 1024)
    answer = await post(
        app, [event("e-1"), event("e-2", time=None), event("e-1", cost="2")], token=REGION_1
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["accepted"], body["duplicate"], body["conflict"], body["rejected"]) == (1, 0, 1, 1)
    assert [(r["index"], r["verdict"], r["id"]) for r in body["results"]] == [
        (0, "accepted", "e-1"),
        (1, "rejected", "e-2"),
        (2, "conflict", "e-1"),
    ]
    assert body["results"][1]["field"] == "time"
    assert (await post(app, {"id": "e-1"}, token=REGION_1)).status_code == 400
    assert (await post(app, b"[{", token=REGION_1)).status_code == 400
    too_many = await post(app, [event(f"e-{i}") for i in range(4)], token=REGION_1)
    assert too_many.status_code == 413
    assert "at most 3" in too_many.json()["detail"]
    assert len(publisher.usage_events) == 1  # nothing from the refused requests


async def test_the_http_endpoint_wants_a_configured_token_and_serves_its_schema() -> None:
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()

    async def use_case(events: list[bytes], scope: SourceScope | None) -> list[EventResult]:
        return await accept(events, store, publisher, scope)

    app = usage_events_api(use_case, tokens=TOKENS, max_events=10, max_bytes=1024 * 1024)
    assert (await post(app, [event()])).status_code == 401
    assert (await post(app, [event()], token="wrong")).status_code == 401
    assert (await post(app, [event()], token=REGION_1[:-1])).status_code == 401
    assert (await post(app, [event()], token=REGION_1)).status_code == 200
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest"
    ) as client:
        document = (await client.get("/v1/openapi.json")).json()
    body = document["paths"]["/v1/usage-events"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/UsageSubmitted"
    }
    assert "SubmittedUsage" in document["components"]["schemas"]


# --- hostile input: each event judged on its own, the body bounded before it is parsed -----


async def test_an_unbounded_amount_rejects_its_event_with_the_reason_and_not_the_batch() -> None:
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()
    results = await accept(
        raw(
            event("e-1"),
            event("e-2", cost="1E+999999999999999999"),  # 21 bytes; MemoryError before
            event("e-3", quantity="1E+100000000"),
            event("e-4", cost="1E-999999999999999999"),
            event("e-5"),
        ),
        store,
        publisher,
    )
    assert [r.verdict for r in results] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert (results[1].field, results[2].field, results[3].field) == (
        "data.cost",
        "data.quantity",
        "data.cost",
    )
    assert "amount too large" in (results[1].reason or "")
    assert "amount too large" in (results[2].reason or "")
    assert "too many decimal places" in (results[3].reason or "")
    assert [e.correlation_id for _, e in publisher.usage_events] == ["e-1", "e-5"]
    reasons = [e.data.reason for _, e in publisher.rejected_events]
    assert len(reasons) == 3
    assert all(len(reason) < 1000 for reason in reasons)


async def test_an_event_failing_for_a_reason_of_its_own_is_rejected_alone() -> None:
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()
    results = await accept(
        raw(
            # valid as an event, but its UTC time is past year 9999: normalizing it fails
            event("e-1", charge_period_start="9999-12-31T23:00:00-05:00"),
            event("e-2", description="x" * (70 * 1024)),  # larger than any usage event
            event("e-3"),
        ),
        store,
        publisher,
    )
    assert [r.verdict for r in results] == ["rejected", "rejected", "accepted"]
    assert "could not be processed: OverflowError" in (results[0].reason or "")
    assert "event too large" in (results[1].reason or "")
    assert [e.correlation_id for _, e in publisher.usage_events] == ["e-3"]
    assert len(publisher.rejected_events) == 2


async def test_event_times_are_converted_to_utc_so_the_period_follows_the_utc_time() -> None:
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()
    await accept(
        raw(
            event(
                "e-1",
                time="2024-09-30T23:00:00-05:00",
                charge_period_start="2024-09-30T22:00:00-05:00",
                charge_period_end="2024-09-30T23:00:00-05:00",
            )
        ),
        store,
        publisher,
    )
    [(_, recorded)] = publisher.usage_events
    record = recorded.data
    assert record.billing_period == "2024-10"
    assert record.charge_period_start == datetime(2024, 10, 1, 3, tzinfo=UTC)
    assert record.charge_period_start.utcoffset() == timedelta(0)
    assert record.charge_period_end == datetime(2024, 10, 1, 4, tzinfo=UTC)
    assert record.charge_period_end.utcoffset() == timedelta(0)


def capped_api(max_bytes: int) -> tuple[Any, InMemoryUsagePublisher, list[int]]:
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()
    calls: list[int] = []

    async def use_case(events: list[bytes], scope: SourceScope | None) -> list[EventResult]:
        calls.append(len(events))
        return await accept(events, store, publisher, scope)

    app = usage_events_api(use_case, tokens=TOKENS, max_events=10_000, max_bytes=max_bytes)
    return app, publisher, calls


async def test_an_oversize_body_is_refused_by_its_content_length_before_it_is_read() -> None:
    app, publisher, calls = capped_api(max_bytes=4096)
    received: list[int] = []

    async def receive() -> dict[str, Any]:  # counts what the endpoint reads of the body
        received.append(1)
        return {"type": "http.request", "body": b"[" * 5000, "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/usage-events",
        "raw_path": b"/v1/usage-events",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"ingest"),
            (b"content-type", b"application/json"),
            (b"content-length", b"157286400"),  # 150 MB announced
            (b"authorization", f"Bearer {REGION_1}".encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("ingest", 80),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 413
    assert json.loads(body)["detail"] == (
        "the body is 157286400 bytes; at most 4096 bytes per request"
    )
    assert received == []  # not a byte of it was read
    assert calls == []
    assert publisher.usage_events == []


async def test_a_body_without_content_length_is_cut_at_the_byte_cap_before_parsing() -> None:
    app, publisher, calls = capped_api(max_bytes=4096)
    one = json.dumps(event("e-1")).encode()

    async def chunks() -> AsyncIterator[bytes]:  # chunked transfer: no Content-Length
        yield b"["
        for _ in range(100):
            yield one + b","
        yield one + b"]"

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest"
    ) as client:
        answer = await client.post(
            "/v1/usage-events",
            content=chunks(),
            headers={"Authorization": f"Bearer {REGION_1}"},
        )
        assert answer.status_code == 413
        assert answer.json()["detail"] == (
            "the body is over 4096 bytes; at most 4096 bytes per request"
        )
        assert calls == []
        # a body under the cap, streamed the same way, is taken
        small = await client.post(
            "/v1/usage-events",
            content=chunks_of(b"[" + one + b"]"),
            headers={"Authorization": f"Bearer {REGION_1}"},
        )
    assert small.status_code == 200
    assert small.json()["accepted"] == 1
    assert len(publisher.usage_events) == 1


async def chunks_of(body: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(body), 100):
        yield body[i : i + 100]


async def test_over_http_an_unbounded_amount_is_a_rejected_event_not_a_failed_batch() -> None:
    app, publisher, _ = capped_api(max_bytes=1024 * 1024)
    answer = await post(
        app,
        [event("e-1"), event("e-2", cost="1E+999999999999999999"), event("e-3")],
        token=REGION_1,
    )
    assert answer.status_code == 200
    assert [(r["verdict"], r["field"]) for r in answer.json()["results"]] == [
        ("accepted", None),
        ("rejected", "data.cost"),
        ("accepted", None),
    ]
    assert "amount too large" in answer.json()["results"][1]["reason"]
    assert len(publisher.usage_events) == 2


# --- who may submit: per-source tokens, scoped, checked per event ---------------------------


async def test_events_outside_the_tokens_scope_are_rejected_each_with_the_reason() -> None:
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()
    region_1 = authenticate(TOKENS, REGION_1)
    assert region_1 is not None
    results = await accept(
        raw(
            event("e-1"),
            event("e-2", sub_account_id="someone-elses-project"),
            event("e-3", provider="AWS"),
            event("e-4", source="metering/openstack-region-2"),  # another system's ids
            event("e-5", sub_account_id="project-43"),
        ),
        store,
        publisher,
        region_1,
    )
    assert [(r.verdict, r.field) for r in results] == [
        ("accepted", None),
        ("rejected", "data.sub_account_id"),
        ("rejected", "data.provider"),
        ("rejected", "source"),
        ("accepted", None),
    ]
    assert results[1].reason == (
        "outside this token's scope (metering region 1): data.sub_account_id "
        "'someone-elses-project' is not one of 'project-42', 'project-43'"
    )
    published = [e.data.sub_account_id for _, e in publisher.usage_events]
    assert published == ["project-42", "project-43"]
    # the refused ids were not claimed: their rightful source can still send them
    [later] = await accept(
        raw(event("e-4", source="metering/openstack-region-2")), store, publisher
    )
    assert later.verdict == "accepted"


async def test_over_http_each_token_reports_only_within_its_scope() -> None:
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()

    async def use_case(events: list[bytes], scope: SourceScope | None) -> list[EventResult]:
        return await accept(events, store, publisher, scope)

    app = usage_events_api(use_case, tokens=TOKENS, max_events=10, max_bytes=1024 * 1024)
    answer = await post(
        app, [event("e-1"), event("e-2", sub_account_id="project-99")], token=REGION_1
    )
    assert answer.status_code == 200
    assert [r["verdict"] for r in answer.json()["results"]] == ["accepted", "rejected"]
    assert "outside this token's scope" in answer.json()["results"][1]["reason"]
    # the marketplace's token may report any provider and account, under its own source only
    market = "marketplace-token-0123456789abcdef"
    answer = await post(
        app,
        [
            event("m-1", source="marketplace", provider="AWS", sub_account_id="p-7"),
            event("m-2"),  # region 1's source
        ],
        token=market,
    )
    assert [r["verdict"] for r in answer.json()["results"]] == ["accepted", "rejected"]


async def test_without_tokens_the_api_is_refused_unless_anonymous_use_is_allowed() -> None:
    store, publisher = InMemorySubmittedEvents(), InMemoryUsagePublisher()

    async def use_case(events: list[bytes], scope: SourceScope | None) -> list[EventResult]:
        return await accept(events, store, publisher, scope)

    with pytest.raises(TokenConfigError, match="needs at least one token"):
        usage_events_api(use_case, tokens={}, max_events=10, max_bytes=1024 * 1024)
    local = usage_events_api(
        use_case, tokens=TOKENS, allow_anonymous=True, max_events=10, max_bytes=1024 * 1024
    )
    assert (await post(local, [event("e-1", provider="AWS")])).status_code == 200
    assert (await post(local, [event("e-2")], token="a-wrong-token-0123456789")).status_code == 401


def test_the_service_refuses_to_start_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("API_TOKENS", "API_TOKENS_FILE", "ALLOW_ANONYMOUS"):
        monkeypatch.delenv(f"BILLING_INGEST_{name}", raising=False)
    with pytest.raises(TokenConfigError, match="no API token for POST /v1/usage-events"):
        create_app(IngestSettings())
    assert IngestSettings(allow_anonymous=True).usage_api_scopes() == {}


def test_tokens_come_from_the_variable_and_the_mounted_file(tmp_path: Path) -> None:
    file = tmp_path / "tokens.json"
    file.write_text(
        json.dumps(
            {"from-the-file-0123456789": {"sources": ["s"], "providers": ["*"], "accounts": ["a"]}}
        )
    )
    settings = IngestSettings(
        api_tokens={
            "from-the-variable-0123456": {"sources": ["*"], "providers": ["P"], "accounts": ["*"]}
        },
        api_tokens_file=file,
    )
    scopes = settings.usage_api_scopes()
    from_file = authenticate(scopes, "from-the-file-0123456789")
    from_variable = authenticate(scopes, "from-the-variable-0123456")
    assert from_file == SourceScope("token #2", frozenset({"s"}), None, frozenset({"a"}))
    assert from_variable == SourceScope("token #1", None, frozenset({"P"}), None)
    assert authenticate(scopes, "from-the-file-012345678") is None
    assert authenticate(scopes, "") is None


@pytest.mark.parametrize(
    ("tokens", "error"),
    [
        ({"short": {"sources": ["*"], "providers": ["*"], "accounts": ["*"]}}, "shorter than 16"),
        ({"long-enough-token-0123": "operator"}, "must be an object"),
        ({"long-enough-token-0123": {"sources": ["*"], "providers": ["*"]}}, "missing keys"),
        (
            {"long-enough-token-0123": {"sources": [], "providers": ["*"], "accounts": ["*"]}},
            "non-empty list",
        ),
    ],
)
def test_a_bad_token_configuration_is_refused_without_showing_the_token(
    tokens: dict[str, Any], error: str
) -> None:
    with pytest.raises(TokenConfigError, match=error) as refused:
        parse_tokens(tokens)
    assert "token-0123" not in str(refused.value)
