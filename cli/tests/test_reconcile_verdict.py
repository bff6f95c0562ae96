"""The verdict ``billing reconcile`` keeps is the one notify's bill report reads (real database),
and its Prometheus gauges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymongo.asynchronous.database import AsyncDatabase

from billing_cli.reconcile.domain import Check, Difference, Explanation, Reconciliation
from billing_cli.reconcile.service import keep_verdict, write_gauges
from billing_notify.adapters.reconciliations import MongoReconciliations


def verdict(*differences: Difference, period: str = "2024-09") -> Reconciliation:
    return Reconciliation(period, None, {}, [], [], list(differences))


LATE = Difference(Check.INVOICING, "acme:2024-10", "late", ("r1",), Explanation.LATE)
LOST = Difference(Check.INVOICING, "invoicing store", "not stored", ("r2",))


@pytest.mark.integration
async def test_notify_reads_the_last_verdict_kept(mongo_db: AsyncDatabase[dict[str, Any]]) -> None:
    reader = MongoReconciliations(mongo_db)
    assert await reader.verdicts(["2024-09"]) == {}
    await keep_verdict(mongo_db, verdict(LATE, LOST))
    [first] = (await reader.verdicts(["2024-09", "2024-10"])).values()
    assert (first.period, first.reconciles, first.unexplained) == ("2024-09", False, 1)
    await keep_verdict(mongo_db, verdict(LATE))
    again = (await reader.verdicts(["2024-09"]))["2024-09"]
    assert (again.reconciles, again.unexplained) == (True, 0)
    assert again.checked_at >= first.checked_at
    assert again.checked_at.tzinfo is not None


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
