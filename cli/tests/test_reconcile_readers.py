"""The topic readers on the real broker: every copy of the period's records, messages that are
no record, and dead letters matched to them byte for byte."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from billing_cli.reconcile.readers import read_dead_letters, read_usage
from billing_runtime.kafka import ensure_topics
from billing_schemas.topics import Topic, dead_letter_name, topic_name

pytestmark = pytest.mark.integration


def recorded(record_id: str, period: str, cost: str = "1.5") -> bytes:
    data = {"record_id": record_id, "bill_id": "b", "provider": "aws",
            "billing_account_id": "payer", "sub_account_id": "111", "currency": "USD",
            "billed_cost": cost, "billing_period": period}  # fmt: skip
    return orjson.dumps({"event_id": f"usage-recorded:{record_id}", "data": data})


async def test_records_of_the_period_and_unreadable_messages(infra: Any, namespace: str) -> None:
    servers, ns = infra.kafka_bootstrap_servers, f"{namespace}."
    usage_topic = topic_name(Topic.USAGE_RECORDED, ns)
    dead_topic = dead_letter_name(Topic.USAGE_RECORDED, ns)
    await ensure_topics(servers, [usage_topic, dead_topic])
    garbage = b'{"data": {"record_id": "x", "billed_cost": "not a number"'
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    try:
        for value in (
            recorded("r1", "2024-09"),
            recorded("r1", "2024-09"),  # a redelivered copy
            recorded("r2", "2024-10"),  # another period
            garbage,
        ):
            await producer.send_and_wait(usage_topic, value, key=b"111")
        headers = [("x-error", b"not valid JSON")]
        await producer.send_and_wait(dead_topic, garbage, key=b"111", headers=headers)
        dead_r1 = recorded("r1", "2024-09")
        headers = [("x-error", b"no customer owns account 'aws|111'")]
        await producer.send_and_wait(dead_topic, dead_r1, key=b"111", headers=headers)
    finally:
        await producer.stop()

    usage, unreadable = await read_usage(servers, usage_topic, "2024-09")
    assert [(u.record_id, str(u.billed_cost)) for u in usage] == [("r1", "1.5"), ("r1", "1.5")]
    [(where, digest)] = unreadable.items()
    assert where.startswith(f"{usage_topic}/")
    dead = await read_dead_letters(servers, dead_topic, "2024-09", "record_id")
    assert dead.by_id == {"r1": "no customer owns account 'aws|111'"}
    assert dead.by_digest[digest] == "not valid JSON"
    # a topic that does not exist reads as empty
    assert await read_usage(servers, f"{ns}missing", "2024-09") == ([], {})
