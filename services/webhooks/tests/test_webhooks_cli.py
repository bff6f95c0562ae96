"""``billing webhooks add|list|disable|enable|deliveries`` against the real database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner
from webhooks_test_support import T0, finalized

from billing_runtime.mongo import make_mongo_client
from billing_webhooks.adapters.mongo import MongoDeliveries, MongoEndpoints
from billing_webhooks.domain.deliveries import RetryPolicy, deliveries_for
from billing_webhooks.domain.messages import message_for

if TYPE_CHECKING:
    from conftest import Infra

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
def database(infra: Infra, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The commands' settings point at this test's database (dropped afterwards)."""
    monkeypatch.setenv("BILLING_WEBHOOKS_MONGODB_URL", infra.mongodb_url)
    monkeypatch.setenv("BILLING_WEBHOOKS_MONGODB_DATABASE", namespace)
    monkeypatch.setenv("COLUMNS", "250")
    yield namespace

    async def drop() -> None:
        client = make_mongo_client(infra.mongodb_url)
        await client.drop_database(namespace)
        await client.close()

    asyncio.run(drop())


class Result:
    """What a command printed and how it exited."""

    def __init__(self, exit_code: int, stdout: str) -> None:
        self.returncode = exit_code
        self.stdout = stdout
        self.stderr = ""


def _billing(infra: Infra, namespace: str, *args: str) -> Result:
    """``billing webhooks ARGS`` in this process (a new interpreter costs seconds a call)."""
    del infra, namespace
    from billing_cli.main import app

    result = CliRunner().invoke(app, ["webhooks", *args], catch_exceptions=False)
    return Result(result.exit_code, result.output)


def _seed(infra: Infra, namespace: str, endpoint_id: str) -> None:
    """One pending delivery of an invoice event for the endpoint."""

    async def seed() -> None:
        client = make_mongo_client(infra.mongodb_url)
        try:
            db: Any = client[namespace]
            stored = await MongoEndpoints(db).get(endpoint_id)
            assert stored is not None
            policy = RetryPolicy(base=T0 - T0, maximum=T0 - T0, max_attempts=1)
            await MongoDeliveries(db).enqueue(
                deliveries_for(message_for(finalized()), [stored], T0, policy)
            )
        finally:
            await client.close()

    asyncio.run(seed())


def test_endpoints_are_managed_and_deliveries_listed_from_the_command_line(
    infra: Infra, namespace: str, database: str
) -> None:
    added = _billing(
        infra,
        namespace,
        "add",
        "https://erp.acme.example/h",
        "--customer",
        "acme",
        "--events",
        "invoice.finalized,invoice.paid",
        "--json",
    )
    assert added.returncode == 0, added.stderr + added.stdout
    endpoint = json.loads(added.stdout)
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["created_by"].startswith("cli:")
    assert endpoint["event_types"] == ["invoice.finalized", "invoice.paid"]
    refused = _billing(infra, namespace, "add", "http://erp.acme.example/h")
    assert refused.returncode == 1
    assert "https" in refused.stdout

    listed = _billing(infra, namespace, "list", "--json")
    assert [e["endpoint_id"] for e in json.loads(listed.stdout)] == [endpoint["endpoint_id"]]
    endpoint_id = endpoint["endpoint_id"]
    _seed(infra, database, endpoint_id)
    shown = _billing(infra, namespace, "deliveries", "--endpoint", endpoint_id, "--json")
    [row] = json.loads(shown.stdout)
    assert row["message_id"] == finalized().event_id
    assert row["state"] == "pending"
    table = _billing(infra, namespace, "deliveries")
    assert finalized().event_id in table.stdout
    assert "1 deliveries" in table.stdout

    off = _billing(infra, namespace, "disable", endpoint_id, "--reason", "migration")
    assert off.returncode == 0, off.stdout
    assert "disabled: migration (cli:" in off.stdout
    shown = _billing(infra, namespace, "deliveries", "--json")
    assert json.loads(shown.stdout)[0]["state"] == "abandoned"
    table = _billing(infra, namespace, "list")
    assert "disabled: migration" in table.stdout
    on = _billing(infra, namespace, "enable", endpoint_id)
    assert on.returncode == 0
    missing = _billing(infra, namespace, "disable", "ep_nope")
    assert missing.returncode == 1
    assert "no endpoint" in missing.stdout
