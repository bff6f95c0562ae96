"""``billing mail log`` reads the delivery log of the configured database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient, MongoClient
from typer.testing import CliRunner

from billing_cli.main import app
from billing_notify.adapters.delivery_log import MongoDeliveryLog
from billing_notify.domain.delivery import DeliveryIntent

if TYPE_CHECKING:
    from conftest import Infra

pytestmark = pytest.mark.integration


class Ticking:
    def __init__(self) -> None:
        self.now = datetime(2024, 10, 1, 6, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _intent(n: int, *, fallback: bool = False) -> DeliveryIntent:
    return DeliveryIntent(
        message_id=f"<invoice-finalized.{n}@billing.invalid>",
        kind="invoice-finalized",
        invoice_id=f"inv-{n}",
        invoice_number=f"ACME-2024-00000{n}",
        customer_id="acme",
        recipients=("ap@acme.example",),
        fallback_recipient=fallback,
    )


async def _fill(url: str, database: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    try:
        log = MongoDeliveryLog(client[database], clock=Ticking())
        await log.claim(_intent(1))
        await log.mark_sending(_intent(1).message_id)
        await log.mark_sent(_intent(1).message_id, "250 Message accepted", ("ap@acme.example",))
        await log.claim(_intent(2, fallback=True))
        await log.mark_failed(_intent(2).message_id, "550 5.1.1 no such user")
    finally:
        await client.close()


@pytest.fixture
def filled(infra: Infra, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("BILLING_NOTIFY_MONGODB_URL", infra.mongodb_url)
    monkeypatch.setenv("BILLING_NOTIFY_MONGODB_DATABASE", namespace)
    asyncio.run(_fill(infra.mongodb_url, namespace))
    yield
    client: MongoClient[dict[str, Any]] = MongoClient(infra.mongodb_url)
    with client:
        client.drop_database(namespace)


def test_mail_log_lists_every_email_newest_first_as_json(filled: None) -> None:
    del filled
    result = CliRunner().invoke(app, ["mail", "log", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["invoice_number"], r["status"], r["attempts"]) for r in rows] == [
        ("ACME-2024-000002", "failed", 1),
        ("ACME-2024-000001", "sent", 1),
    ]
    assert rows[0]["fallback_recipient"] is True
    assert rows[0]["smtp_response"] == "550 5.1.1 no such user"
    assert rows[1]["delivered_to"] == ["ap@acme.example"]
    assert set(rows[1]) >= {"recipients", "kind", "created_at", "updated_at", "message_id"}


def test_mail_log_for_one_invoice_as_a_table(filled: None) -> None:
    del filled
    result = CliRunner().invoke(
        app, ["mail", "log", "--invoice", "ACME-2024-000001"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "ACME-2024-000001" in result.output
    assert "250 Message accepted" in result.output
    assert "ACME-2024-000002" not in result.output
    assert "1 emails about invoice ACME-2024-000001" in result.output
