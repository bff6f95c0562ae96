"""Webhooks in-process on the real broker and database, delivering to a real HTTP receiver.

Events published on the pipeline's topics (out of order across topics, one twice) must reach
each subscribed endpoint signed (verified by the docs' own example code), once per event id,
in invoice order, retried after a 503; an endpoint answering 500 for longer than the disabling
period is disabled and the operators get an email.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from receiver import Receiver, receiving
from webhooks_test_support import bill_processed, finalized, paid, payment

from billing_devtools.testing import TopicReader, eventually, produce
from billing_runtime.access import Scope
from billing_schemas.events import Envelope
from billing_schemas.topics import Topic, dead_letter_name, topic_name
from billing_webhooks.adapters.mongo import MongoDeliveries, MongoEndpoints
from billing_webhooks.app import create_app
from billing_webhooks.domain.deliveries import DeliveryState
from billing_webhooks.domain.endpoints import Endpoint
from billing_webhooks.service.endpoints import NewEndpoint, add_endpoint
from billing_webhooks.settings import WebhooksSettings

if TYPE_CHECKING:
    from conftest import Infra, SmtpSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

OPERATOR = Scope(None)


def _settings(infra: Infra, namespace: str, smtp_port: int) -> WebhooksSettings:
    return WebhooksSettings.model_validate(
        {
            "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
            "mongodb_url": infra.mongodb_url,
            "mongodb_database": namespace,
            "topic_namespace": f"{namespace}.",
            "batch_timeout_ms": 50,
            "allow_http_urls": True,
            "order_window_seconds": 1.5,
            "retry_backoff_seconds": 0.3,
            "poll_seconds": 0.1,
            "disable_after_days": 2.0 / 86400,  # two seconds
            "smtp_port": smtp_port,
            "operators": "ops@example.com",
        }
    )


@asynccontextmanager
async def running(settings: WebhooksSettings) -> AsyncIterator[None]:
    app = create_app(settings)
    await app.start()
    try:
        yield
    finally:
        await app.stop()


def _key(event: Envelope) -> bytes:
    """The partition key invoicing and ingest use: the customer (the bill for bills)."""
    data: Any = getattr(event, "data", None)
    return str(getattr(data, "customer_id", None) or getattr(data, "bill_id", "")).encode()


async def _publish(settings: WebhooksSettings, topic: Topic, *events: Envelope) -> None:
    await produce(
        settings.kafka_bootstrap_servers,
        topic_name(topic, settings.topic_namespace),
        [(_key(e), e.model_dump_json().encode()) for e in events],
    )


async def _add(
    endpoints: MongoEndpoints, receiver: Receiver, path: str, customer: str | None
) -> Endpoint:
    endpoint = await add_endpoint(
        endpoints,
        OPERATOR,
        NewEndpoint(f"{receiver.url}{path}", customer, []),
        actor="test",
        allow_http=True,
    )
    receiver.secrets[path] = endpoint.secret
    return endpoint


async def test_signed_deliveries_in_invoice_order_retried_deduplicated_and_disabled(
    infra: Infra, namespace: str, smtp_sink: SmtpSink, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    settings = _settings(infra, namespace, smtp_sink.port)
    endpoints = MongoEndpoints(mongo_db)
    deliveries = MongoDeliveries(mongo_db)
    now = datetime.now(UTC)
    acme = [
        finalized("acme", at=now),
        payment("acme", at=now + timedelta(seconds=1)),
        paid("acme", at=now + timedelta(seconds=1)),
    ]
    globex = [finalized("globex", at=now), payment("globex", at=now + timedelta(seconds=2))]
    bill = bill_processed(at=now)
    async with receiving() as receiver:
        ops = await _add(endpoints, receiver, "/flaky", None)
        mine = await _add(endpoints, receiver, "/ok", "acme")
        down = await _add(endpoints, receiver, "/down", "globex")
        async with running(settings):
            # each invoice's events, latest first, on their three topics; one published twice
            await _publish(settings, Topic.INVOICE_PAID, acme[2])
            await _publish(settings, Topic.PAYMENT_RECORDED, acme[1], globex[1])
            await _publish(settings, Topic.INVOICE_FINALIZED, acme[0], globex[0], acme[0])
            await _publish(settings, Topic.BILL_PROCESSED, bill)

            async def all_arrived() -> bool:
                return len(receiver.at("/flaky")) == 6 and len(receiver.at("/ok")) == 3

            await eventually(all_arrived, "every delivery accepted", within=40)

            async def disabled() -> bool:
                stored = await endpoints.get(down.endpoint_id)
                return stored is not None and not stored.enabled and bool(smtp_sink.messages())

            await eventually(disabled, "the failing endpoint disabled, operators emailed", 40)
            await asyncio.sleep(1.0)  # anything sent twice would arrive meanwhile

    assert all(r.verified for r in receiver.received), "every delivery verifies"
    # the customer's endpoint: its own invoice only, once each, in the invoice's order
    assert [r.event_type for r in receiver.at("/ok")] == [
        "invoice.finalized",
        "payment.recorded",
        "invoice.paid",
    ]
    assert [r.webhook_id for r in receiver.at("/ok")] == [e.event_id for e in acme]
    assert receiver.at("/ok", accepted=False) == receiver.at("/ok")
    assert receiver.at("/ok")[1].body == {
        "type": "payment.recorded",
        "timestamp": acme[1].occurred_at.isoformat(),
        "data": acme[1].model_dump(mode="json")["data"],
    }
    # the operators' endpoint: everything, each refused once (503) then accepted, in order
    flaky = receiver.at("/flaky", accepted=False)
    assert sorted(r.status for r in flaky) == [204] * 6 + [503] * 6
    for invoice in (acme, globex):
        ids = [e.event_id for e in invoice]
        assert [r.webhook_id for r in receiver.at("/flaky") if r.webhook_id in ids] == ids
    attempts = await deliveries.attempts(f"{ops.endpoint_id}:{acme[0].event_id}")
    assert [(a.number, a.status_code) for a in attempts] == [(1, 503), (2, 204)]
    assert all(a.duration_ms > 0 for a in attempts)
    logged = await deliveries.get(f"{ops.endpoint_id}:{acme[0].event_id}")
    assert logged is not None
    assert logged.state is DeliveryState.DELIVERED
    # the failing endpoint got globex's events only, then was disabled and its queue abandoned
    assert {r.webhook_id for r in receiver.at("/down", accepted=False)} <= {
        e.event_id for e in globex
    }
    stored = await endpoints.get(down.endpoint_id)
    assert stored is not None
    assert "failed for" in (stored.disabled_reason or "")
    assert {d.state for d in await deliveries.deliveries(endpoint_id=down.endpoint_id)} == {
        DeliveryState.ABANDONED
    }
    [mail] = smtp_sink.messages()
    text = mail.read_text()
    assert "Webhook endpoint disabled" in text
    assert down.endpoint_id in text
    healthy = await endpoints.get(mine.endpoint_id)
    assert healthy is not None
    assert healthy.enabled
    assert healthy.failing_since is None


async def test_an_unreadable_event_is_dead_lettered_and_the_rest_delivered(
    infra: Infra, namespace: str, smtp_sink: SmtpSink, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    settings = _settings(infra, namespace, smtp_sink.port)
    endpoints = MongoEndpoints(mongo_db)
    event = paid("acme", at=datetime.now(UTC))
    async with receiving() as receiver:
        await _add(endpoints, receiver, "/ok", None)
        dlq = dead_letter_name(Topic.INVOICE_PAID, settings.topic_namespace)
        async with running(settings), TopicReader(infra.kafka_bootstrap_servers, dlq) as dead:
            await produce(
                settings.kafka_bootstrap_servers,
                topic_name(Topic.INVOICE_PAID, settings.topic_namespace),
                [(b"acme", b'{"event_type": "invoice.paid", "data": {}}')],
            )
            await _publish(settings, Topic.INVOICE_PAID, event)
            [letter] = await dead.wait_for(1)

            async def delivered() -> bool:
                return len(receiver.at("/ok")) == 1

            await eventually(delivered, "the good event delivered")
    assert letter.value == b'{"event_type": "invoice.paid", "data": {}}'
    headers = dict(letter.headers)
    assert b"validation failed" in headers["x-error"]
    assert [r.webhook_id for r in receiver.at("/ok")] == [event.event_id]
