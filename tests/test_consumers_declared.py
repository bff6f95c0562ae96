"""Every consumer of every service is declared through ``runtime.consumer`` (issue 12), on a
channel that declares its group; none subscribes to the broker or decodes records by hand."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from billing_cli.asyncapi import SERVICES
from billing_schemas.channels import BY_TOPIC
from billing_schemas.topics import Topic

ROOT = Path(__file__).resolve().parents[1]
BY_HAND = re.compile(r"\.subscriber\(|raw_batch_decoder|decode_batch|ConsumerRecord|raw_message")


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_every_subscriber_of_the_service_is_a_declared_consumer(service: str) -> None:
    runtime = SERVICES[service][1]()
    try:
        subscribed = sorted(
            tuple(sorted(t.name for t in subscriber.topics))
            for subscriber in list[Any](runtime.broker.subscribers)
        )
        declared = sorted(tuple(sorted(c.topics)) for c in runtime.consumers)
        assert runtime.consumers
        assert subscribed == declared
        for consumer in runtime.consumers:
            for topic in consumer.topics:
                assert consumer.group in BY_TOPIC[Topic(topic)].groups
    finally:
        await runtime.mongo.close()


def test_no_service_module_subscribes_or_decodes_by_hand() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "services").glob("*/src/**/*.py"))
        if BY_HAND.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
