"""Ingest's flows, written once and run twice (the ``flow`` fixture): in memory, and on the real
broker. A bill loaded through ``bootstrap.load_context`` (``billing ingest``'s wiring) publishes
its usage records keyed by sub-account, its rejected rows keyed by bill and the bill's figures,
and nothing a second time; upstream usage events on their topic, through the service's
consumer, become usage records once each, with a verdict for each of the others."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from billing_ingest.app import build
from billing_ingest.bootstrap import load_context
from billing_ingest.service.load_bill import load_bill
from billing_ingest.settings import IngestSettings
from billing_schemas.channels import (
    BILL_PROCESSED,
    USAGE_RECORDED,
    USAGE_REJECTED,
    USAGE_SUBMITTED,
)
from billing_schemas.events import BillProcessed, UsageRecorded, UsageRejected

if TYPE_CHECKING:
    from conftest import FlowBroker, Infra

pytestmark = pytest.mark.integration

HEADER = (
    "BilledCost,BillingAccountId,BillingCurrency,BillingPeriodStart,ChargeCategory,"
    "ChargePeriodStart,ChargePeriodEnd,ProviderName,ServiceName,SubAccountId,ResourceId\n"
)


def line(resource: str, cost: str, sub_account: str = "S1") -> str:
    return (
        f"{cost},111,USD,2024-09-01 00:00:00,Usage,2024-09-02 00:00:00,2024-09-02 01:00:00,"
        f"AWS,EC2,{sub_account},{resource}\n"
    )


def settings_for(flow: FlowBroker, infra: Infra, namespace: str) -> IngestSettings:
    return IngestSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        mongodb_url=infra.mongodb_url,
        mongodb_database=namespace,
        topic_namespace=flow.namespace,
    )


async def test_a_loaded_bill_publishes_its_records_its_rejected_rows_and_its_figures_once(
    flow: FlowBroker, infra: Infra, namespace: str, tmp_path: Path
) -> None:
    settings = settings_for(flow, infra, namespace)
    bill = tmp_path / "bill.csv"
    rows = (line("A", "1.00"), line("B", "2.00"), line("C", "3.00", "S2"), line("X", "lots"))
    bill.write_text(HEADER + "".join(rows))

    async with load_context(settings, flow.publisher()) as ctx:
        first = await load_bill(bill, publisher=ctx.ports.publisher, registry=ctx.ports.registry)
        again = await load_bill(bill, publisher=ctx.ports.publisher, registry=ctx.ports.registry)

    summary = first.summary
    assert (summary.rows_read, summary.rows_accepted, summary.rows_rejected) == (4, 3, 1)
    assert summary.status == "partially_rejected"
    assert again.already_loaded
    assert again.summary.bill_id == summary.bill_id

    ns = flow.namespace
    recorded = await flow.read(USAGE_RECORDED.name(ns), 3)
    records = [UsageRecorded.model_validate_json(r.value).data for r in recorded]
    assert len(records) == 3, "the second load published nothing"
    assert len({r.record_id for r in records}) == 3
    assert sorted((r.sub_account_id, r.billed_cost) for r in records) == [
        ("S1", Decimal("1.00")),
        ("S1", Decimal("2.00")),
        ("S2", Decimal("3.00")),
    ]
    assert sorted(r.key for r in recorded) == [b"S1", b"S1", b"S2"]
    assert {dict(r.headers)["correlation_id"] for r in recorded} == {summary.bill_id.encode()}

    [rejected] = await flow.read(USAGE_REJECTED.name(ns), 1)
    row = UsageRejected.model_validate_json(rejected.value).data
    assert rejected.key == summary.bill_id.encode()
    assert row.bill_id == summary.bill_id
    assert "BilledCost" in row.reason

    [processed] = await flow.read(BILL_PROCESSED.name(ns), 1)
    assert processed.key == summary.bill_id.encode()
    assert BillProcessed.model_validate_json(processed.value).data == summary


def usage_event(event_id: str, cost: str = "0.36", **drop: bool) -> bytes:
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
    return json.dumps(body).encode()


async def test_upstream_events_become_records_once_and_the_others_get_their_verdict(
    flow: FlowBroker, infra: Infra, namespace: str
) -> None:
    await flow.serve(build(settings_for(flow, infra, namespace), flow.publisher()))
    ns = flow.namespace

    for event in (usage_event("e-1"), usage_event("e-2")):
        await flow.publish_raw(USAGE_SUBMITTED, b"project-42", event)
    assert len(await flow.read(USAGE_RECORDED.name(ns), 2)) == 2
    # e-1 again (a duplicate: recorded again under the same id), e-2 with another cost (a
    # conflict: never recorded), and one without a source (rejected, and dead-lettered)
    no_source = usage_event("e-3", source=True)
    for event in (usage_event("e-1"), usage_event("e-2", cost="9.99"), no_source):
        await flow.publish_raw(USAGE_SUBMITTED, b"project-42", event)

    recorded = await flow.read(USAGE_RECORDED.name(ns), 3)
    reasons = [
        UsageRejected.model_validate_json(r.value).data.reason
        for r in await flow.read(USAGE_REJECTED.name(ns), 2)
    ]
    [dead] = await flow.read(USAGE_SUBMITTED.dead_letter_name(ns), 1)

    records = [UsageRecorded.model_validate_json(r.value).data for r in recorded]
    assert len(records) == 3
    assert len({r.record_id for r in records}) == 2
    assert [r.billed_cost for r in records] == [Decimal("0.36")] * 3
    assert {r.key for r in recorded} == {b"project-42"}
    assert sorted(r.split(":")[0] for r in reasons) == ["conflict", "rejected"]
    assert dead.value == no_source
    assert b"source" in dict(dead.headers)["x-error"]
    assert dict(dead.headers)["x-failed-by"] == b"ingest"
