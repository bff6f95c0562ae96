"""What ``billing reconcile`` does with its verdict: keeps it in its own ``reconcile_results``
(real database), publishes a whole period's as ``PeriodReconciled`` (in memory, and by the
command itself on the real broker; a run narrowed to one customer publishes nothing), and writes
it as Prometheus gauges."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymongo.asynchronous.database import AsyncDatabase
from typer.testing import CliRunner

from billing_cli.main import app
from billing_cli.reconcile.domain import Check, Difference, Explanation, Reconciliation
from billing_cli.reconcile.readers import read_topic
from billing_cli.reconcile.service import RESULTS, keep_verdict, publish_verdict, write_gauges
from billing_runtime.memory import InMemoryBroker
from billing_schemas.channels import PERIOD_RECONCILED
from billing_schemas.events import PeriodReconciled

if TYPE_CHECKING:
    from conftest import Infra


def verdict(
    *differences: Difference, period: str = "2024-09", customer: str | None = None
) -> Reconciliation:
    return Reconciliation(period, customer, {}, [], [], list(differences))


LATE = Difference(Check.INVOICING, "acme:2024-10", "late", ("r1",), Explanation.LATE)
LOST = Difference(Check.INVOICING, "invoicing store", "not stored", ("r2",))
CHECKED = datetime(2024, 10, 2, 8, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.integration
async def test_the_last_verdict_of_each_scope_is_kept(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    await keep_verdict(mongo_db, verdict(LATE, LOST), CHECKED)
    await keep_verdict(mongo_db, verdict(LATE, customer="acme"), CHECKED)
    first = await mongo_db[RESULTS].find_one({"_id": "2024-09"})
    assert first is not None
    assert (first["reconciles"], first["differences"], first["unexplained"]) == (False, 2, 1)
    await keep_verdict(mongo_db, verdict(LATE))
    again = await mongo_db[RESULTS].find_one({"_id": "2024-09"})
    assert again is not None
    assert (again["reconciles"], again["differences"], again["unexplained"]) == (True, 1, 0)
    assert again["checked_at"] > first["checked_at"]
    alone = await mongo_db[RESULTS].find_one({"_id": "2024-09|acme"})
    assert alone is not None
    assert (alone["customer_id"], alone["reconciles"]) == ("acme", True)


async def test_a_whole_period_verdict_is_published_keyed_by_its_period() -> None:
    broker = InMemoryBroker()
    assert await publish_verdict(broker, "ns.", verdict(LATE, LOST), CHECKED)
    [record] = broker.records("ns.billing.period.reconciled.v1")
    assert record.key == b"2024-09"
    event = PERIOD_RECONCILED.decode(record.value)
    assert isinstance(event, PeriodReconciled)
    assert event.event_id == "period-reconciled:2024-09:2024-10-02T08:00:00.123000+00:00"
    assert event.data.model_dump() == {
        "period": "2024-09",
        "reconciles": False,
        "differences": 2,
        "unexplained": 1,
        "checked_at": CHECKED,
    }


async def test_a_run_narrowed_to_one_customer_publishes_nothing() -> None:
    broker = InMemoryBroker()
    assert not await publish_verdict(broker, "", verdict(LATE, customer="acme"), CHECKED)
    assert broker.topics == {}


def _published(infra: Infra, topic: str) -> list[PeriodReconciled]:
    async def read() -> list[PeriodReconciled]:
        return [
            PeriodReconciled.model_validate_json(message.value)
            async for message in read_topic(infra.kafka_bootstrap_servers, topic)
        ]

    return asyncio.run(read())


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_the_command_publishes_the_verdict_of_the_period(infra: Infra, namespace: str) -> None:
    """``billing reconcile`` on the real broker and database: a period with nothing in it
    reconciles (exit 0) and its verdict is on the topic; a customer's run adds nothing."""
    env = {
        "BILLING_KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "BILLING_MONGODB_URL": infra.mongodb_url,
        "BILLING_MONGODB_DATABASE": namespace,
        "BILLING_TOPIC_NAMESPACE": f"{namespace}.",
    }
    runner = CliRunner()
    try:
        run = runner.invoke(app, ["reconcile", "--period", "2031-01", "--json"], env=env)
        assert run.exit_code == 0, run.output
        topic = PERIOD_RECONCILED.name(f"{namespace}.")
        [event] = _published(infra, topic)
        assert (event.data.period, event.data.reconciles, event.data.unexplained) == (
            "2031-01",
            True,
            0,
        )
        assert event.source == "billing-reconcile"
        alone = runner.invoke(
            app, ["reconcile", "--period", "2031-01", "--customer", "acme"], env=env
        )
        assert alone.exit_code == 0, alone.output
        assert [e.event_id for e in _published(infra, topic)] == [event.event_id]
    finally:
        asyncio.run(_drop(infra, namespace))


async def _drop(infra: Infra, namespace: str) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    try:
        await client.drop_database(namespace)
    finally:
        await client.close()


def test_the_gauges_say_whether_the_period_reconciles(tmp_path: Path) -> None:
    path = tmp_path / "reconcile.prom"
    write_gauges(verdict(LATE, LOST), path)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }
    labels = (("customer", ""), ("period", "2024-09"))
    unexplained = (("customer", ""), ("explained", "false"), ("period", "2024-09"))
    explained = (("customer", ""), ("explained", "true"), ("period", "2024-09"))
    assert samples[("billing_reconcile_period_reconciles", labels)] == 0
    assert samples[("billing_reconcile_differences", unexplained)] == 1
    assert samples[("billing_reconcile_differences", explained)] == 1
    write_gauges(verdict(LATE), path)
    assert 'billing_reconcile_period_reconciles{customer="",period="2024-09"} 1.0' in (
        path.read_text()
    )
