"""The webhooks service's flow, written once and run twice (the ``flow`` fixture): in memory,
and on the real broker; deliveries go to a real HTTP receiver either way. Events published on
the pipeline's topics (out of order across topics, one twice) reach each subscribed endpoint
signed (verified by the docs' own example code), once per event id, in invoice order, retried
after a 503; an endpoint failing past the disabling period is disabled and the operators
emailed; what is not an event is dead-lettered and the rest delivered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from receiver import Receiver, receiving
from webhooks_test_support import bill_processed, finalized, paid, payment

from billing_devtools.testing import eventually
from billing_runtime.access import Scope
from billing_schemas.channels import (
    BILL_PROCESSED,
    INVOICE_FINALIZED,
    INVOICE_PAID,
    PAYMENT_RECORDED,
)
from billing_webhooks.adapters.mongo import MongoDeliveries, MongoEndpoints
from billing_webhooks.app import build
from billing_webhooks.domain.deliveries import DeliveryState
from billing_webhooks.domain.endpoints import Endpoint
from billing_webhooks.service.endpoints import NewEndpoint, add_endpoint
from billing_webhooks.settings import WebhooksSettings

if TYPE_CHECKING:
    from conftest import FlowBroker, Infra, SmtpSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

OPERATOR = Scope(None)


def _settings(flow: FlowBroker, infra: Infra, namespace: str, smtp_port: int) -> WebhooksSettings:
    return WebhooksSettings.model_validate(
        {
            "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
            "mongodb_url": infra.mongodb_url,
            "mongodb_database": namespace,
            "topic_namespace": flow.namespace,
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
    flow: FlowBroker,
    infra: Infra,
    namespace: str,
    smtp_sink: SmtpSink,
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    endpoints = MongoEndpoints(mongo_db)
    deliveries = MongoDeliveries(mongo_db)
    now = datetime.now(UTC)
    acme = [
        finalized("acme", at=now),
        payment("acme", at=now + timedelta(seconds=1)),
        paid("acme", at=now + timedelta(seconds=1)),
    ]
    globex = [finalized("globex", at=now), payment("globex", at=now + timedelta(seconds=2))]
    async with receiving() as receiver:
        ops = await _add(endpoints, receiver, "/flaky", None)
        mine = await _add(endpoints, receiver, "/ok", "acme")
        down = await _add(endpoints, receiver, "/down", "globex")
        await flow.serve(build(_settings(flow, infra, namespace, smtp_sink.port), flow.publisher()))
        # each invoice's events, latest first, on their three topics; one published twice
        await flow.publish(INVOICE_PAID, [acme[2]])
        await flow.publish(PAYMENT_RECORDED, [acme[1], globex[1]])
        await flow.publish(INVOICE_FINALIZED, [acme[0], globex[0], acme[0]])
        await flow.publish(BILL_PROCESSED, [bill_processed(at=now)])
        await flow.settle()

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
    # the failing endpoint got globex's events only, then was disabled and its queue abandoned
    assert {r.webhook_id for r in receiver.at("/down", accepted=False)} <= {
        e.event_id for e in globex
    }
    assert {d.state for d in await deliveries.deliveries(endpoint_id=down.endpoint_id)} == {
        DeliveryState.ABANDONED
    }
    [mail] = smtp_sink.messages()
    assert down.endpoint_id in mail.read_text()
    healthy = await endpoints.get(mine.endpoint_id)
    assert healthy is not None
    assert healthy.enabled


async def test_an_unreadable_event_is_dead_lettered_and_the_rest_delivered(
    flow: FlowBroker,
    infra: Infra,
    namespace: str,
    smtp_sink: SmtpSink,
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    event = paid("acme", at=datetime.now(UTC))
    unreadable = b'{"event_type": "invoice.paid", "data": {}}'
    async with receiving() as receiver:
        await _add(MongoEndpoints(mongo_db), receiver, "/ok", None)
        await flow.serve(build(_settings(flow, infra, namespace, smtp_sink.port), flow.publisher()))
        await flow.publish_raw(INVOICE_PAID, b"acme", unreadable)
        await flow.publish(INVOICE_PAID, [event])
        [letter] = await flow.read(INVOICE_PAID.dead_letter_name(flow.namespace), 1)

        async def delivered() -> bool:
            return len(receiver.at("/ok")) == 1

        await eventually(delivered, "the good event delivered")
    assert letter.value == unreadable
    assert b"validation failed" in dict(letter.headers)["x-error"]
    assert [r.webhook_id for r in receiver.at("/ok")] == [event.event_id]
