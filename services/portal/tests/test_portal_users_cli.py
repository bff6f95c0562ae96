"""``billing users add`` / ``disable`` on the real database and broker: each change to a user is
published once to ``billing.audit.recorded.v1`` with the operator's ``cli:<os user>``."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient
from typer.testing import CliRunner

from billing_portal.entrypoints.cli import users_app
from billing_runtime.audit import cli_actor
from billing_schemas.topics import Topic, topic_name

if TYPE_CHECKING:
    from conftest import Infra

pytestmark = pytest.mark.integration


async def _audit_events(bootstrap: str, topic: str, count: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(60):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    found += [json.loads(r.value or b"{}") for r in records]
    finally:
        await consumer.stop()
    return found


async def _drop(url: str, name: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        await client.drop_database(name)
    finally:
        await client.close()


def test_adding_resetting_and_disabling_a_user_are_audited(
    infra: Infra, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "BILLING_PORTAL_MONGODB_URL": infra.mongodb_url,
        "BILLING_PORTAL_MONGODB_DATABASE": namespace,
        "BILLING_PORTAL_KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "BILLING_PORTAL_TOPIC_NAMESPACE": f"{namespace}.",
    }.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    try:
        for args in (
            ["add", "ann@alpha.example", "--customer", "alpha"],
            ["add", "ann@alpha.example", "--customer", "alpha", "--reset"],
            ["disable", "ann@alpha.example"],
        ):
            done = runner.invoke(users_app, args)
            assert done.exit_code == 0, done.output
        listed = runner.invoke(users_app, ["list"])
        assert "disabled" in listed.output
        unknown = runner.invoke(users_app, ["disable", "nobody@alpha.example"])
        assert unknown.exit_code == 1
        topic = topic_name(Topic.AUDIT_RECORDED, f"{namespace}.")
        events = asyncio.run(_audit_events(infra.kafka_bootstrap_servers, topic, 3))
    finally:
        asyncio.run(_drop(infra.mongodb_url, namespace))
    entries = [e["data"] for e in events]
    assert [e["action"] for e in entries] == ["user.added", "user.password_reset", "user.disabled"]
    assert {e["actor"] for e in entries} == {cli_actor()}
    assert {e["subject"] for e in entries} == {"user:ann@alpha.example"}
    assert entries[2]["before"]["disabled"] is False
    assert entries[2]["after"]["disabled"] is True
    assert {e["source"] for e in events} == {"portal"}
