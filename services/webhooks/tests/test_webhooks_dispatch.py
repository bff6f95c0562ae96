"""The delivery use cases over the in-memory fakes: queue, send in order, retry, disable."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from webhooks_test_support import T0, bill_processed, endpoint, finalized, paid, payment

from billing_runtime.access import Scope
from billing_webhooks.adapters.memory import (
    InMemoryDeliveries,
    InMemoryEndpoints,
    RecordedAlerts,
    ScriptedSender,
)
from billing_webhooks.domain.deliveries import DeliveryState, RetryPolicy
from billing_webhooks.domain.endpoints import EndpointNotFoundError
from billing_webhooks.domain.messages import EventKind, WebhookSource, message_for
from billing_webhooks.service.deliver import (
    DeliveryPolicy,
    WebhookPorts,
    dispatch_due,
    enqueue,
)
from billing_webhooks.service.endpoints import disable_endpoint

POLICY = DeliveryPolicy(
    retry=RetryPolicy(
        base=timedelta(seconds=10),
        maximum=timedelta(hours=1),
        max_attempts=1000,
        order_window=timedelta(seconds=1),
    ),
    disable_after=timedelta(days=5),
)
FAIL = 503
OK = 200


def _ports(sender: ScriptedSender) -> WebhookPorts:
    return WebhookPorts(InMemoryEndpoints(), InMemoryDeliveries(), sender, RecordedAlerts())


async def test_events_reach_each_subscribed_endpoint_once_in_invoice_order() -> None:
    sender = ScriptedSender()
    ports = _ports(sender)
    await ports.endpoints.add(endpoint("ep_ops"))
    await ports.endpoints.add(endpoint("ep_acme", customer="acme"))
    await ports.endpoints.add(endpoint("ep_globex", customer="globex"))
    events: list[WebhookSource] = [
        paid(),
        payment(),
        finalized(),
        finalized("globex"),
        bill_processed(),
    ]
    queued = await enqueue(ports, [message_for(e) for e in events], POLICY, now=T0)
    # ops: all 5; acme: its 3; globex: its 1
    assert len(queued) == 9
    assert await enqueue(ports, [message_for(e) for e in events], POLICY, now=T0) == []
    now = T0
    while await ports.deliveries.pending():
        now += timedelta(seconds=1)
        await dispatch_due(ports, POLICY, now=now)
    received: dict[str, list[str]] = {}
    for endpoint_id, delivery, _ in sender.sent:
        received.setdefault(endpoint_id, []).append(json.loads(delivery.body)["type"])
    assert received["ep_acme"] == ["invoice.finalized", "payment.recorded", "invoice.paid"]
    assert received["ep_globex"] == ["invoice.finalized"]
    acme_at_ops = [
        json.loads(d.body)["type"]
        for e, d, _ in sender.sent
        if e == "ep_ops" and d.order_key == "invoice:acme:2024-09"
    ]
    assert acme_at_ops == ["invoice.finalized", "payment.recorded", "invoice.paid"]
    assert len(received["ep_ops"]) == 5


async def test_a_failing_head_holds_back_the_rest_of_its_invoice_until_it_succeeds() -> None:
    sender = ScriptedSender({"ep_1": [FAIL, FAIL, OK]})
    ports = _ports(sender)
    await ports.endpoints.add(endpoint("ep_1"))
    await enqueue(ports, [message_for(e) for e in (finalized(), payment())], POLICY, now=T0)
    report = await dispatch_due(ports, POLICY, now=T0 + timedelta(seconds=1))
    assert [a.status_code for a in report.attempts] == [503]
    # the retry is due 10 s later; the payment is not sent meanwhile
    report = await dispatch_due(ports, POLICY, now=T0 + timedelta(seconds=5))
    assert report.attempts == []
    report = await dispatch_due(ports, POLICY, now=T0 + timedelta(seconds=11))
    assert [a.status_code for a in report.attempts] == [503]
    report = await dispatch_due(ports, POLICY, now=T0 + timedelta(seconds=31))
    assert [(a.status_code, a.number) for a in report.attempts] == [(200, 3)]
    report = await dispatch_due(ports, POLICY, now=T0 + timedelta(seconds=32))
    assert [a.message_id for a in report.attempts] == [payment().event_id]
    assert [d.message_id for _, d, _ in sender.sent] == [
        finalized().event_id,
        finalized().event_id,
        finalized().event_id,
        payment().event_id,
    ]


async def test_an_endpoint_failing_for_days_is_disabled_its_queue_abandoned_operators_told() -> (
    None
):
    sender = ScriptedSender({"ep_1": [FAIL]})
    ports = _ports(sender)
    await ports.endpoints.add(endpoint("ep_1", customer="acme"))
    await ports.endpoints.add(endpoint("ep_2", customer="acme"))
    await enqueue(ports, [message_for(e) for e in (finalized(), payment())], POLICY, now=T0)
    now = T0 + timedelta(seconds=1)
    report = await dispatch_due(ports, POLICY, now=now)
    assert len(report.attempts) == 2
    while now < T0 + timedelta(days=6):
        now += timedelta(hours=1)
        report = await dispatch_due(ports, POLICY, now=now)
        if report.disabled:
            break
    assert [e.endpoint_id for e in report.disabled] == ["ep_1"]
    assert now - T0 >= timedelta(days=5)
    assert now - T0 < timedelta(days=5, hours=2)
    alerts = ports.alerts
    assert isinstance(alerts, RecordedAlerts)
    assert [e.endpoint_id for e in alerts.disabled] == ["ep_1"]
    stored = await ports.endpoints.get("ep_1")
    assert stored is not None
    assert not stored.enabled
    assert report.abandoned == 2
    log = await ports.deliveries.deliveries(endpoint_id="ep_1")
    assert {d.state for d in log} == {DeliveryState.ABANDONED}
    # the healthy endpoint got both events; new events skip the disabled one
    assert {d.state for d in await ports.deliveries.deliveries(endpoint_id="ep_2")} == {
        DeliveryState.DELIVERED
    }
    assert await enqueue(ports, [message_for(paid())], POLICY, now=now) != []
    assert {d.endpoint_id for d in await ports.deliveries.pending()} == {"ep_2"}


async def test_disabling_by_hand_abandons_the_queue_and_customers_cannot_touch_others() -> None:
    ports = _ports(ScriptedSender())
    await ports.endpoints.add(endpoint("ep_1", customer="acme"))
    await enqueue(ports, [message_for(finalized())], POLICY, now=T0)
    with pytest.raises(EndpointNotFoundError):
        await disable_endpoint(
            ports.endpoints, ports.deliveries, Scope("globex"), "ep_1", reason="x"
        )
    done = await disable_endpoint(
        ports.endpoints, ports.deliveries, Scope("acme"), "ep_1", reason="moving ERP"
    )
    assert not done.enabled
    assert done.disabled_reason == "moving ERP"
    assert await ports.deliveries.pending() == []
    [logged] = await ports.deliveries.deliveries()
    assert logged.state is DeliveryState.ABANDONED
    assert logged.kind is EventKind.INVOICE_FINALIZED
