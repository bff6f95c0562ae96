"""Webhooks and the audit trail on the running pipeline (five services, the real broker and
database): a customer's endpoint registered with ``billing webhooks add`` receives its invoice's
finalization, payment and "paid" events, signed and in order, at a real HTTP receiver; the
actions of the operator (catalog, close, payment: ``cli:<os user>``) and of the customer's token
(a contact) are each in ``billing audit`` once."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from einvoice_check import validate_issued
from pymongo import AsyncMongoClient
from receiver import receiving

from billing_runtime.access import token_name
from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "demo" / "focus_sample.csv"
CATALOG = ROOT / "demo" / "catalog.yaml"
OPERATOR = "e2e-operator-token-0123456789"
NORTHWIND = "e2e-northwind-token-0123456789"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # 10 CLI calls: slow on a loaded machine


async def wait_until(check: Any, what: str, seconds: float = 180) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def test_webhooks_reach_a_receiver_in_order_and_every_action_is_audited(
    pipeline: Any, tmp_path: Path
) -> None:
    tokens = json.dumps({OPERATOR: "operator", NORTHWIND: "customer:northwind"})
    pipeline.ports["webhooks"] = free_port()
    prefix = "BILLING_WEBHOOKS_"
    pipeline.extra_env |= {
        "BILLING_INVOICING_API_TOKENS": tokens,
        f"{prefix}API_TOKENS": tokens,
        f"{prefix}KAFKA_BOOTSTRAP_SERVERS": pipeline.infra.kafka_bootstrap_servers,
        f"{prefix}MONGODB_URL": pipeline.infra.mongodb_url,
        f"{prefix}MONGODB_DATABASE": pipeline.namespace,
        f"{prefix}TOPIC_NAMESPACE": f"{pipeline.namespace}.",
        f"{prefix}ALLOW_HTTP_URLS": "true",
        f"{prefix}ORDER_WINDOW_SECONDS": "1",
        f"{prefix}POLL_SECONDS": "0.2",
    }
    async with receiving() as receiver:
        await pipeline.start("ingest", "rating", "invoicing", "notify", "webhooks")
        await pipeline.billing("topics", "create")
        added = json.loads(
            await pipeline.billing(
                "webhooks", "add", f"{receiver.url}/ok", "--customer", "northwind", "--json"
            )
        )
        receiver.secrets["/ok"] = added["secret"]
        await pipeline.billing("catalog", "apply", str(CATALOG))
        await pipeline.billing("ingest", str(SAMPLE))
        await pipeline.billing("wait")

        invoicing = f"http://127.0.0.1:{pipeline.ports['invoicing']}"
        async with httpx.AsyncClient(base_url=invoicing, timeout=30) as client:
            contact = await client.post(
                "/v1/customers/northwind/contacts",
                headers={"Authorization": f"Bearer {NORTHWIND}"},
                json={"email": "erp@northwind.example", "roles": ["Tech"]},
            )
            assert contact.status_code == 201, contact.text
            await pipeline.billing("invoices", "generate", "--period", "2024-09")
            page = await client.get(
                "/v1/invoices?customer=northwind&period=2024-09",
                headers={"Authorization": f"Bearer {OPERATOR}"},
            )
            [invoice] = page.json()["items"]
        await pipeline.billing(
            "pay",
            invoice["number"],
            "--amount",
            invoice["total"],
            "--method",
            "Card",
            "--reference",
            "CH-e2e-hooks",
        )

        async def three_events() -> bool:
            return len(receiver.at("/ok")) >= 3

        await wait_until(three_events, "the invoice's three webhooks")
        await asyncio.sleep(1.0)

    received = receiver.at("/ok")
    assert all(r.verified for r in receiver.received)
    assert [r.event_type for r in received] == [
        "invoice.finalized",
        "payment.recorded",
        "invoice.paid",
    ]
    assert all(
        r.body and r.body["data"]["invoice_number"] == invoice["number"]  # type: ignore[index]
        for r in received
    )

    trail = json.loads(await pipeline.billing("audit", "--json"))
    by_action: dict[str, list[dict[str, Any]]] = {}
    for row in trail:
        by_action.setdefault(row["action"], []).append(row)
    me = f"cli:{getpass.getuser()}"
    [catalog] = by_action["catalog.applied"]
    assert catalog["actor"] == me
    [contact_added] = by_action["contact.added"]
    assert contact_added["actor"] == token_name(NORTHWIND)
    assert contact_added["after"]["email"] == "erp@northwind.example"
    [close] = by_action["invoices.close_requested"]
    assert close["actor"] == me
    assert "northwind:2024-09" in close["after"]["invoices"]
    [payment] = by_action["payment.recorded"]
    assert payment["actor"] == me
    assert payment["subject"] == f"invoice:{invoice['number']}"
    assert payment["after"]["amount"] == invoice["total"]
    assert payment["before"]["outstanding"] == invoice["total"]

    # the period's invoices, in the three e-invoice formats, validated (issue 17)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pipeline.infra.mongodb_url)
    try:
        await validate_issued(mongo[pipeline.namespace], tmp_path, "webhooks_audit_e2e", expect=2)
    finally:
        await mongo.close()
