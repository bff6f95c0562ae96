"""The audit trail kept by the webhooks service: append-only storage (one contract, two
backends), the consumer on the real broker (an action published twice is kept once), the
operators' API route and ``billing audit``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from test_webhooks_flow import running
from typer.testing import CliRunner

from billing_devtools.testing import eventually
from billing_runtime.access import parse_tokens, token_name
from billing_runtime.audit import KafkaAuditTrail
from billing_runtime.kafka import EventPublisher
from billing_schemas.events import AuditEntry
from billing_webhooks.adapters.audit_log import MongoAuditLog
from billing_webhooks.adapters.memory import InMemoryAuditLog, InMemoryDeliveries, InMemoryEndpoints
from billing_webhooks.domain.audit import AuditRecord
from billing_webhooks.entrypoints.http import webhooks_api
from billing_webhooks.ports import AuditLog
from billing_webhooks.settings import WebhooksSettings

if TYPE_CHECKING:
    from conftest import Infra

T0 = datetime(2024, 10, 1, 9, 0, tzinfo=UTC)
OPERATOR = "op-token-0123456789abcdef"
ACME = "acme-token-0123456789abcdef"


def _entry(action: str = "payment.recorded", **changes: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "action": action,
        "actor": "cli:alice",
        "subject": "invoice:ACME-1",
        "customer_id": "acme",
        "summary": "payment 10.00 EUR",
        "before": {"outstanding": "30.00", "tags": {"team.a": "x", "$odd": "y"}},
        "after": {"outstanding": "20.00"},
    }
    return AuditEntry.model_validate(values | changes)


def _record(audit_id: str, minutes: int, **changes: Any) -> AuditRecord:
    return AuditRecord(audit_id, T0 + timedelta(minutes=minutes), "invoicing", _entry(**changes))


class AuditLogContract:
    """What every audit log does."""

    async def test_records_are_kept_once_and_never_changed(self, log: AuditLog) -> None:
        first = _record("a1", 0)
        assert await log.append([first, _record("a2", 5)]) == 2
        # the same id again, even with other content, changes nothing
        assert await log.append([_record("a1", 9, summary="rewritten"), _record("a3", 10)]) == 1
        kept = await log.read()
        assert [r.audit_id for r in kept] == ["a1", "a2", "a3"]
        assert kept[0] == first
        assert kept[0].entry.before == {
            "outstanding": "30.00",
            "tags": {"team.a": "x", "$odd": "y"},
        }

    async def test_reads_from_a_time_on_oldest_first(self, log: AuditLog) -> None:
        await log.append([_record("late", 60), _record("early", 1), _record("mid", 30)])
        assert [r.audit_id for r in await log.read(since=T0 + timedelta(minutes=30))] == [
            "mid",
            "late",
        ]
        assert [r.audit_id for r in await log.read(limit=2)] == ["early", "mid"]


class TestInMemoryAuditLog(AuditLogContract):
    @pytest.fixture
    def log(self) -> AuditLog:
        return InMemoryAuditLog()


@pytest.mark.integration
class TestMongoAuditLog(AuditLogContract):
    @pytest.fixture
    async def log(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> AuditLog:
        log = MongoAuditLog(mongo_db)
        await log.ensure_indexes()
        return log


async def test_only_operators_read_the_trail_through_the_api() -> None:
    log = InMemoryAuditLog()
    await log.append([_record("a1", 0), _record("a2", 90)])
    app = webhooks_api(
        tokens=parse_tokens({OPERATOR: "operator", ACME: "customer:acme"}),
        endpoints=InMemoryEndpoints(),
        deliveries=InMemoryDeliveries(),
        audit=log,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://webhooks") as client:
        refused = await client.get("/v1/audit", headers={"Authorization": f"Bearer {ACME}"})
        assert refused.status_code == 403
        assert (await client.get("/v1/audit")).status_code == 401
        answer = await client.get(
            "/v1/audit",
            params={"since": (T0 + timedelta(hours=1)).isoformat()},
            headers={"Authorization": f"Bearer {OPERATOR}"},
        )
    assert answer.status_code == 200
    [row] = answer.json()
    assert row["audit_id"] == "a2"
    assert row["actor"] == "cli:alice"
    assert row["before"]["outstanding"] == "30.00"
    assert row["after"] == {"outstanding": "20.00"}


@pytest.fixture
async def publisher(infra: Infra) -> AsyncIterator[EventPublisher]:
    started = EventPublisher(infra.kafka_bootstrap_servers, "test-audit")
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


@pytest.mark.integration
@pytest.mark.timeout(90)
async def test_published_actions_are_kept_once_and_listed_by_billing_audit(
    infra: Infra,
    namespace: str,
    mongo_db: AsyncDatabase[dict[str, Any]],
    publisher: EventPublisher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = WebhooksSettings.model_validate(
        {
            "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
            "mongodb_url": infra.mongodb_url,
            "mongodb_database": namespace,
            "topic_namespace": f"{namespace}.",
            "batch_timeout_ms": 50,
        }
    )
    trail = KafkaAuditTrail(publisher, f"{namespace}.", "invoicing", infra.kafka_bootstrap_servers)
    log = MongoAuditLog(mongo_db)
    async with running(settings):
        await trail.record(_entry(), audit_id="payment:pay-1")
        await trail.record(_entry(), audit_id="payment:pay-1")  # a retried request
        await trail.record(
            _entry("contact.added", actor=token_name(ACME), before=None), audit_id="contact:1"
        )

        async def kept() -> bool:
            return len(await log.read()) == 2

        await eventually(kept, "both actions kept")
        await asyncio.sleep(1.0)  # a duplicate would be stored meanwhile
    records = await log.read()
    assert sorted(r.audit_id for r in records) == ["contact:1", "payment:pay-1"]
    assert {r.source for r in records} == {"invoicing"}

    monkeypatch.setenv("BILLING_WEBHOOKS_MONGODB_URL", infra.mongodb_url)
    monkeypatch.setenv("BILLING_WEBHOOKS_MONGODB_DATABASE", namespace)
    monkeypatch.setenv("COLUMNS", "250")
    from billing_cli.main import app

    since = (min(r.at for r in records) - timedelta(seconds=1)).isoformat()
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["audit", "--since", since, "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["action"] for r in rows] == ["payment.recorded", "contact.added"]
    assert rows[1]["actor"] == token_name(ACME)
    assert rows[0]["before"]["tags"] == {"team.a": "x", "$odd": "y"}
    future = await asyncio.to_thread(
        CliRunner().invoke, app, ["audit", "--since", "2999-01-01"], catch_exceptions=False
    )
    assert "0 actions since 2999-01-01" in future.output
