"""A generated bill through the whole pipeline: each invoice is the exact sum of its charges.

The run is the pipeline benchmark's own (``bench/pipeline_bench.py``: the same bill generator,
catalog, services as real processes, ``billing ingest`` and ``billing invoices generate``),
smaller: 50,000 lines for 100 customers by default (``PIPELINE_TEST_LINES``,
``PIPELINE_TEST_CUSTOMERS``). Nothing here is timed. The expected figures are recomputed
independently of invoicing: every rated charge is read back from the charge topic with a bare
consumer, de-duplicated by charge id, and its price summed as ``Decimal`` per customer, period,
provider and service; each finalized invoice's usage (and correction) lines, as the invoicing
HTTP API returns them, must carry exactly those unrounded sums and charge counts. Every
issued invoice is then generated in the three e-invoice formats and validated (issue 17; the
workload's customers receive Factur-X, XRechnung or Peppol BIS by country).

Exactly, under the one rounding money gets before an invoice (docs/money.md, "Rounding", rule 1):
each charge's price is kept in the database as an integer of 10^-9 units, rounded half-even, so
a line's exact amount is the sum of its charges' prices each rounded so.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from einvoice_check import validate_issued
from pipeline_bench import PipelineBench
from pipeline_workload import PERIOD, Workload, customer_id
from pymongo import AsyncMongoClient

from billing_cli.reconcile.service import reconcile_period
from billing_runtime.lag import topic_partitions
from billing_schemas.topics import Topic, topic_name

LINES = int(os.environ.get("PIPELINE_TEST_LINES", "50000"))
CUSTOMERS = int(os.environ.get("PIPELINE_TEST_CUSTOMERS", "100"))

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(int(os.environ.get("PIPELINE_TEST_TIMEOUT", "3600"))),
]

Key = tuple[str, str, str, str]  # customer, period, provider, service
NANO = Decimal("1e-9")


async def rated_charges(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    """Every charge on the charge topic by charge id (close markers skipped); a charge that
    was published twice must be the same charge both times."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = await topic_partitions(admin, [topic])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        charges: dict[str, dict[str, Any]] = {}

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await behind():
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    assert record.value is not None
                    event = json.loads(record.value)
                    if event["event_type"] != "charge.rated":
                        continue  # a period-close marker
                    charge = event["data"]
                    earlier = charges.setdefault(charge["charge_id"], charge)
                    assert earlier == charge, f"charge {charge['charge_id']} differs when repeated"
        return charges
    finally:
        await consumer.stop()


def expected_lines(charges: dict[str, dict[str, Any]]) -> dict[Key, tuple[Decimal, int]]:
    """Price sum (each price to 10^-9, half-even, as stored) and count of charges per customer,
    period, provider and service."""
    price: dict[Key, Decimal] = defaultdict(Decimal)
    count: Counter[Key] = Counter()
    for c in charges.values():
        key = (c["customer_id"], c["billing_period"], c["provider"], c["service_name"])
        price[key] += Decimal(c["price"]).quantize(NANO, rounding=ROUND_HALF_EVEN)
        count[key] += 1
    return {key: (price[key], count[key]) for key in price}


def invoiced_lines(invoices: list[dict[str, Any]]) -> dict[Key, tuple[Decimal, int]]:
    """The usage and correction lines of the finalized invoices, with their unrounded amounts,
    per customer, period, provider and service (a service's usage, credits, purchases... are
    lines of their own: added up here)."""
    lines: dict[Key, tuple[Decimal, int]] = {}
    for invoice in invoices:
        document = invoice["document"]
        for line in document["lines"]:
            if line["kind"] not in ("usage", "correction"):
                continue  # subscriptions and included infrastructure: not charges
            period = line.get("period") or document["period"]
            key = (document["customer_id"], period, line["provider"], line["service_name"])
            amount, count = lines.get(key, (Decimal(0), 0))
            lines[key] = (amount + Decimal(line["amount_exact"]), count + int(line["charge_count"]))
    return lines


async def test_every_invoice_is_the_exact_sum_of_its_rated_charges(
    infra: Any, tmp_path: Path
) -> None:
    workload = Workload(LINES, CUSTOMERS)
    async with PipelineBench(
        workload,
        infra.kafka_bootstrap_servers,
        infra.mongodb_url,
        tmp_path / "run",
        sample_seconds=0.5,
        bill_dir=tmp_path,
    ) as run:
        figures = await run.run(ceilings=False)
        charges = await rated_charges(
            infra.kafka_bootstrap_servers,
            topic_name(Topic.CHARGE_RATED, run.topic_namespace),
        )
        invoices = run.invoices
        emails = len(run.mail.received)
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
        try:
            reconciled = await reconcile_period(
                mongo[run.namespace], infra.kafka_bootstrap_servers, run.topic_namespace, PERIOD
            )
            # every issued invoice, in Factur-X, XRechnung and Peppol BIS, passes the validator
            await validate_issued(
                mongo[run.namespace], tmp_path, "pipeline_totals_e2e", expect=CUSTOMERS
            )
        finally:
            await mongo.close()

    # billing reconcile: every line on exactly one invoice, nothing unexplained
    assert reconciled.reconciles, reconciled.unexplained
    assert reconciled.counts["bill_lines"] == reconciled.counts["charges_stored"] == LINES

    # one charge per bill line, one finalized and emailed invoice per customer
    assert len(charges) == LINES
    assert figures["end_to_end"]["records"] == LINES
    customers = sorted(customer_id(c) for c in range(CUSTOMERS))
    assert sorted(i["customer_id"] for i in invoices) == customers
    assert all(i["status"] == "finalized" and i["document"]["period"] == PERIOD for i in invoices)
    assert emails == CUSTOMERS

    expected = expected_lines(charges)
    invoiced = invoiced_lines(invoices)
    assert sorted(invoiced) == sorted(expected)
    for key, (amount, count) in expected.items():
        assert invoiced[key] == (amount, count), key
