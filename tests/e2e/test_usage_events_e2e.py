"""Upstream usage events through the running ingest service: the Kafka topic and the HTTP
batch endpoint, on the real broker and database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from billing_devtools.testing import TopicReader, produce
from billing_schemas.topics import Topic, dead_letter_name, topic_name

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def event(event_id: str, cost: str = "0.36", **drop: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": event_id,
        "source": "metering/region-1",
        "type": "com.example.usage.v1",
        "time": "2024-09-02T10:00:00Z",
        "data": {
            "provider": "OpenStack",
            "sub_account_id": "project-42",
            "service_name": "compute",
            "quantity": "3",
            "unit": "hour",
            "cost": cost,
            "currency": "EUR",
            "charge_period_start": "2024-09-02T09:00:00Z",
            "charge_period_end": "2024-09-02T10:00:00Z",
        },
    }
    for key in drop:
        body.pop(key)
    return body


async def test_events_by_http_and_by_kafka_get_a_verdict_each_and_are_recorded_once(
    pipeline: Any,
) -> None:
    await pipeline.start("ingest")
    servers, ns = pipeline.infra.kafka_bootstrap_servers, f"{pipeline.namespace}."
    url = f"http://127.0.0.1:{pipeline.ports['ingest']}/v1/usage-events"
    async with (
        TopicReader(servers, topic_name(Topic.USAGE_RECORDED, ns)) as recorded,
        TopicReader(servers, topic_name(Topic.USAGE_REJECTED, ns)) as rejected,
        TopicReader(servers, dead_letter_name(Topic.USAGE_SUBMITTED, ns)) as dead,
        httpx.AsyncClient(timeout=30) as client,
    ):
        answer = await client.post(url, json=[event("h-1"), event("h-2", time=True), event("h-3")])
        assert answer.status_code == 200
        assert [r["verdict"] for r in answer.json()["results"]] == [
            "accepted",
            "rejected",
            "accepted",
        ]
        # the same events by Kafka: h-1 again (duplicate), h-3 with another cost (conflict),
        # a new one, and one without a producer
        await produce(
            servers,
            topic_name(Topic.USAGE_SUBMITTED, ns),
            [
                (b"project-42", json.dumps(e).encode())
                for e in (
                    event("h-1"),
                    event("h-3", cost="9.99"),
                    event("k-1"),
                    event("k-2", source=True),
                )
            ],
        )
        records = [json.loads(r.value)["data"] for r in await recorded.wait_for(4)]
        reasons = [json.loads(r.value)["data"]["reason"] for r in await rejected.wait_for(3)]
        [dead_letter] = await dead.wait_for(1)
    # h-1 twice (once per channel, same record id), h-3 and k-1 once; h-3's 9.99 never
    assert len({r["record_id"] for r in records}) == 3
    assert sorted(r["billed_cost"] for r in records) == ["0.36"] * 4
    assert reasons[0].startswith("rejected: time: Field required")
    assert sorted(r.split(":")[0] for r in reasons[1:]) == ["conflict", "rejected"]
    assert json.loads(dead_letter.value)["id"] == "k-2"
    assert b"source" in dict(dead_letter.headers)["x-error"]


SOURCE_TOKEN = "e2e-region-1-token-0123456789"


async def test_hostile_input_is_refused_per_event_and_the_service_stays_up(pipeline: Any) -> None:
    """An unbounded amount, an event outside the token's scope and oversize bodies, sent to
    the running ingest over HTTP and Kafka: each refused with its reason, the good events
    around them accepted, and ingest still healthy."""
    pipeline.extra_env.update(
        {
            "BILLING_INGEST_ALLOW_ANONYMOUS": "false",
            "BILLING_INGEST_API_TOKENS": json.dumps(
                {
                    SOURCE_TOKEN: {
                        "name": "region 1",
                        "sources": ["metering/region-1"],
                        "providers": ["OpenStack"],
                        "accounts": ["project-42"],
                    }
                }
            ),
            "BILLING_INGEST_MAX_REQUEST_BYTES": "65536",
        }
    )
    await pipeline.start("ingest")
    servers, ns = pipeline.infra.kafka_bootstrap_servers, f"{pipeline.namespace}."
    base = f"http://127.0.0.1:{pipeline.ports['ingest']}"
    url = f"{base}/v1/usage-events"
    auth = {"Authorization": f"Bearer {SOURCE_TOKEN}"}
    hostile = "1E+999999999999999999"
    outsider = event("h-3")
    outsider["data"]["sub_account_id"] = "someone-elses-project"
    async with (
        TopicReader(servers, topic_name(Topic.USAGE_RECORDED, ns)) as recorded,
        TopicReader(servers, topic_name(Topic.USAGE_REJECTED, ns)) as rejected,
        TopicReader(servers, dead_letter_name(Topic.USAGE_SUBMITTED, ns)) as dead,
        httpx.AsyncClient(timeout=30) as client,
    ):
        assert (await client.post(url, json=[event("h-0")])).status_code == 401
        answer = await client.post(
            url,
            json=[event("h-1"), event("h-2", cost=hostile), outsider, event("h-4")],
            headers=auth,
        )
        assert answer.status_code == 200
        results = answer.json()["results"]
        assert [(r["verdict"], r["field"]) for r in results] == [
            ("accepted", None),
            ("rejected", "data.cost"),
            ("rejected", "data.sub_account_id"),
            ("accepted", None),
        ]
        assert "amount too large" in results[1]["reason"]
        assert "outside this token's scope" in results[2]["reason"]

        # oversize bodies: by Content-Length, and streamed without one
        big = json.dumps([event(f"b-{i}") for i in range(200)]).encode()
        assert len(big) > 65536
        refused = await client.post(url, content=big, headers=auth)
        assert refused.status_code == 413
        assert "at most 65536 bytes per request" in refused.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(big), 4096):
                yield big[i : i + 4096]

        streamed = await client.post(url, content=chunks(), headers=auth)
        assert streamed.status_code == 413
        assert "at most 65536 bytes per request" in streamed.json()["detail"]
        assert (await client.get(f"{base}/health")).status_code == 200

        # the same hostile amounts on the Kafka topic, between good events
        await produce(
            servers,
            topic_name(Topic.USAGE_SUBMITTED, ns),
            [
                (b"project-42", json.dumps(e).encode())
                for e in (
                    event("k-1"),
                    event("k-2", cost=hostile),
                    event("k-3", cost="9E+300000"),
                    event("k-4"),
                )
            ],
        )
        records = [json.loads(r.value) for r in await recorded.wait_for(4)]
        letters = await dead.wait_for(2)
        reasons = [json.loads(r.value)["data"]["reason"] for r in await rejected.wait_for(4)]
        assert (await client.get(f"{base}/health")).status_code == 200
    assert sorted(r["correlation_id"] for r in records) == ["h-1", "h-4", "k-1", "k-4"]
    assert sorted(json.loads(letter.value)["id"] for letter in letters) == ["k-2", "k-3"]
    for letter in letters:
        assert b"amount too large" in dict(letter.headers)["x-error"]
    assert sum("amount too large" in reason for reason in reasons) == 3
    assert sum("outside this token's scope" in reason for reason in reasons) == 1
    assert pipeline.processes["ingest"].returncode is None  # still running


async def test_ingest_refuses_to_start_without_api_tokens(pipeline: Any) -> None:
    pipeline.extra_env["BILLING_INGEST_ALLOW_ANONYMOUS"] = "false"
    with pytest.raises(RuntimeError, match="no API token for POST /v1/usage-events"):
        await pipeline.start("ingest")
