"""Upstream usage events through the running ingest service: the Kafka topic and the HTTP
batch endpoint, on the real broker and database."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from billing_runtime.testing import TopicReader, produce
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
