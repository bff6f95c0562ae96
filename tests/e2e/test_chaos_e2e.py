"""The fault campaign of ``make chaos`` (``bench/chaos.py``), smaller: the same code, fewer
records and one fault of each kind. It runs on a private Kafka broker and FerretDB of its own
(started here with ``scripts/infra.sh`` on free ports), since it kills and restarts them.

What it proves: with each service SIGKILLed and restarted (invoicing also mid-close, notify
mid-email), the broker and the database crashed and restarted, a bill loaded twice, a CUR bill's
loader killed mid-load and its restatement loaded, duplicate and conflicting upstream events over
HTTP and Kafka, and an SMTP server that answers 451 and then drops connections: ``billing
reconcile`` finds nothing unexplained, the invoice numbers are gapless, each invoice was emailed
exactly once to its Billing contact, notify's log says sent once for each, and no distinct event
was lost or billed twice (``ChaosRun.check`` raises otherwise).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from chaos import Plan, run_campaign
from einvoice_check import validate_issued
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


async def test_a_month_billed_through_crashes_reconciles_and_is_emailed_once(
    tmp_path: Path,
) -> None:
    plan = Plan(
        seed=int(os.environ.get("CHAOS_TEST_SEED", "11")),
        focus_lines=3000,
        cur_lines=600,
        events=600,
        customers=12,
        kills=1,
        flow_seconds=40,
        smtp_fault_seconds=8,
    )
    checked: list[str] = []

    async def validate_einvoices(mongodb_url: str, database: str) -> None:
        """Every invoice the campaign issued, in the three e-invoice formats, validated (issue
        17), on the private stack before it stops."""
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
        try:
            checked.extend(
                await validate_issued(mongo[database], tmp_path, "chaos_e2e", expect=plan.customers)
            )
        finally:
            await mongo.close()

    figures = await run_campaign(
        plan, tmp_path / "chaos", inspect=validate_einvoices
    )  # progress printed (shown on failure)

    faults = figures["faults"]
    killed = {f["target"] for f in faults if f["kind"] == "sigkill"}
    assert killed >= {"ingest", "rating", "invoicing", "notify", "billing ingest (CUR bill)"}
    assert {f["target"] for f in faults if f["kind"] == "restart"} == {"kafka", "ferretdb"}
    verdict = figures["verdict"]
    assert verdict["reconcile"]["reconciles"] is True
    assert verdict["invoices"] == plan.customers
    assert verdict["emails"]["invoice_emails"] == plan.customers
    # the SMTP faults were felt: messages were refused and connections dropped, then sent
    assert verdict["emails"]["smtp_refused"].get("451", 0) > 0
    assert verdict["emails"]["smtp_refused"].get("dropped", 0) > 0
    counts = verdict["reconcile"]["counts"]
    assert counts["upstream_accepted"] == plan.events
    assert counts["upstream_conflicts"] == figures["events"]["conflicts_sent"] > 0
    assert counts["bills"] == 3  # A (loaded twice: once), B and its restatement B2
    # each invoice in Factur-X, XRechnung and Peppol BIS (and the Factur-X PDFs sent) was valid
    assert len([name for name in checked if name.endswith(".xml")]) >= 2 * plan.customers
