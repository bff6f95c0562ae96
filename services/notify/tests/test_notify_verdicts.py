"""Notify keeps ``billing reconcile``'s verdicts from ``billing.period.reconciled.v1`` and its
bill report says them: the rule (the newest check of a period wins, whatever the order of
arrival), the use case on the in-memory port, and the flow written once and run in memory and
on the real broker (the ``flow`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from notify_test_support import consumed, notify_settings, plain_text, sink_mails
from pymongo.asynchronous.database import AsyncDatabase

from billing_devtools.testing import eventually
from billing_notify.adapters.memory import (
    InMemoryInvoicePdfs,
    InMemoryMailer,
    InMemoryReconciliations,
)
from billing_notify.adapters.reconciliations import MongoReconciliations
from billing_notify.app import build
from billing_notify.domain.bill_report import (
    Verdict,
    newest_per_period,
    supersedes,
    verdict_of,
)
from billing_notify.service.keep_verdicts import keep_verdicts
from billing_schemas.channels import BILL_PROCESSED, PERIOD_RECONCILED
from billing_schemas.events import BillProcessed, BillSummary, PeriodReconciled, ReconcileVerdict
from billing_schemas.topics import Topic

if TYPE_CHECKING:
    from conftest import FlowBroker, Infra, SmtpSink

CHECKED = datetime(2024, 10, 2, 8, 0, tzinfo=UTC)


def reconciled(
    period: str, unexplained: int, checked_at: datetime, differences: int = 4
) -> PeriodReconciled:
    """A verdict as ``billing reconcile`` publishes it."""
    return PeriodReconciled.create(
        ReconcileVerdict(
            period=period,
            reconciles=unexplained == 0,
            differences=differences,
            unexplained=unexplained,
            checked_at=checked_at,
        ),
        source="billing-reconcile",
        correlation_id=f"reconcile:{period}",
        event_id=f"period-reconciled:{period}:{checked_at.isoformat()}",
    )


def kept(event: PeriodReconciled) -> Verdict:
    return verdict_of(event.data)


# --- the rule ----------------------------------------------------------------------------------


def test_only_a_later_check_supersedes_the_kept_verdict() -> None:
    first = kept(reconciled("2024-09", 2, CHECKED))
    later = kept(reconciled("2024-09", 0, CHECKED + timedelta(seconds=1)))
    assert supersedes(first, None)
    assert supersedes(later, first)
    assert not supersedes(first, later)
    assert not supersedes(first, first)  # the same verdict again: nothing to do


def test_the_newest_verdict_of_each_period_whatever_the_order() -> None:
    a_old = kept(reconciled("2024-09", 2, CHECKED))
    a_new = kept(reconciled("2024-09", 0, CHECKED + timedelta(hours=1)))
    b = kept(reconciled("2024-10", 1, CHECKED))
    assert newest_per_period([a_new, b, a_old]) == [a_new, b]
    assert newest_per_period([a_old, b, a_new]) == [a_new, b]
    assert newest_per_period([]) == []


def test_a_verdict_is_kept_to_the_millisecond_as_the_database_keeps_it() -> None:
    at = datetime(2024, 10, 2, 8, 0, 0, 123456, tzinfo=UTC)
    verdict = kept(reconciled("2024-09", 3, at, differences=7))
    assert verdict == Verdict(
        "2024-09", reconciles=False, unexplained=3, checked_at=at.replace(microsecond=123000)
    )


# --- the use case, in memory -------------------------------------------------------------------


async def test_keeping_verdicts_is_idempotent_and_ignores_late_older_ones() -> None:
    port = InMemoryReconciliations()
    old, new = reconciled("2024-09", 2, CHECKED), reconciled("2024-09", 0, CHECKED + timedelta(1))
    other = reconciled("2024-10", 1, CHECKED)
    # one batch with the newer first: one write per period, the newest
    assert await keep_verdicts([new, other, old], port) == 2
    assert await port.verdicts(["2024-09", "2024-10"]) == {
        "2024-09": kept(new),
        "2024-10": kept(other),
    }
    # the older one redelivered later, and the newer one again: nothing changes
    assert await keep_verdicts([old], port) == 0
    assert await keep_verdicts([new, other], port) == 0
    assert (await port.verdicts(["2024-09"]))["2024-09"] == kept(new)


# --- the flow, in memory and on Kafka ----------------------------------------------------------


def bill(occurred_at: datetime) -> BillProcessed:
    return BillProcessed.create(
        BillSummary(
            bill_id="bill-r",
            file_name="focus-2024-09.csv",
            checksum_sha256="0" * 64,
            format="focus",
            status="processed",
            billing_periods=["2024-09", "2024-10"],
            rows_read=3,
            rows_accepted=3,
            rows_rejected=0,
            billed_cost_totals={"USD": Decimal("3.5")},
        ),
        source="billing-ingest",
        correlation_id="bill-r",
        occurred_at=occurred_at,
    )


@pytest.mark.integration
@pytest.mark.timeout(90)
async def test_the_bill_report_says_the_newest_verdict_notify_kept(
    flow: FlowBroker,
    infra: Infra,
    namespace: str,
    mongo_db: AsyncDatabase[dict[str, Any]],
    smtp_sink: SmtpSink,
) -> None:
    fake = InMemoryMailer() if flow.kind == "memory" else None
    settings = notify_settings(infra, namespace, smtp_sink.port, operators=["ops@cumulus.example"])
    # a bill report attaches no PDF: no invoicing API behind it
    await flow.serve(build(settings, flow.publisher(), fake, InMemoryInvoicePdfs()))
    verdicts = MongoReconciliations(mongo_db)

    async def taken() -> None:
        """Until notify's verdict group has taken what was published."""
        if flow.kind == "memory":
            await flow.settle()
        else:
            await consumed(settings, Topic.PERIOD_RECONCILED, "-reconcile-verdicts")

    older = reconciled("2024-09", 0, CHECKED - timedelta(hours=2), differences=1)
    newer = reconciled("2024-09", 2, CHECKED)
    # the newer one first, the older arriving after it (a late or replayed run)
    await flow.publish(PERIOD_RECONCILED, [newer, older])
    await taken()
    assert await verdicts.verdicts(["2024-09", "2024-10"]) == {"2024-09": kept(newer)}
    await flow.publish(PERIOD_RECONCILED, [newer])  # a redelivery
    await taken()
    assert await verdicts.verdicts(["2024-09"]) == {"2024-09": kept(newer)}

    await flow.publish(BILL_PROCESSED, [bill(CHECKED - timedelta(hours=1))])
    if fake is not None:
        await flow.settle()
        [sent] = fake.sent
        text = plain_text(sent.message)
    else:

        async def arrived() -> bool:
            return len(smtp_sink.messages()) >= 1

        await eventually(arrived, "the bill report in the SMTP sink")
        [mail] = sink_mails(smtp_sink.directory)
        text = plain_text(mail)
    line = "2024-09: does NOT reconcile: 2 unexplained differences (checked 2024-10-02 08:00 UTC)"
    assert line in text  # the newest verdict, checked after this bill: no "run it again"
    assert "2024-10: not reconciled yet (billing reconcile --period 2024-10)" in text
