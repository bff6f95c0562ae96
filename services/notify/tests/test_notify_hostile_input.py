"""Hostile input to notify: a header value with any line break ``str.splitlines()`` knows is
refused (Python's email package would raise ``ValueError`` on U+2028, NEL, \\v, \\f...), and a
message that fails for a reason of its own, expected or not, is dead-lettered with the reason
while the rest of its batch is mailed: the running service stays up, never redelivering."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from notify_test_support import consumed, notify_settings, publish, running, sink_mails
from pymongo.errors import ServerSelectionTimeoutError

from billing_catalog.models import Address, Contact, ContactRole, Customer, PriceList
from billing_devtools.testing import TopicReader, eventually
from billing_notify.adapters.memory import (
    InMemoryCustomerDirectory,
    InMemoryDeliveryLog,
    InMemoryMailer,
)
from billing_notify.domain.bill_report import BillReportView, bill_report_view
from billing_notify.domain.errors import UnsafeHeaderError
from billing_notify.domain.messages import MessageKind, render
from billing_notify.domain.recipients import check_header_value, parse_mailbox
from billing_notify.ports import TransientMailError
from billing_notify.service.deliver import MailPolicy, NotifyPorts, Result
from billing_notify.service.notify_invoice import notify_invoice_finalized
from billing_notify.service.retries import redrive_due
from billing_schemas.events import (
    BillProcessed,
    BillSummary,
    FinalizedInvoice,
    InvoiceFinalized,
)
from billing_schemas.topics import Topic, dead_letter_name

if TYPE_CHECKING:
    from conftest import Infra, SmtpSink

AT = datetime(2024, 10, 1, 6, 30, tzinfo=UTC)
BREAKS = ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("brk", BREAKS, ids=[f"U+{ord(b):04X}" for b in BREAKS])
def test_every_line_break_splitlines_knows_is_refused_in_a_header(brk: str) -> None:
    assert len(f"a{brk}b".splitlines()) == 2  # what the rule is taken from
    with pytest.raises(UnsafeHeaderError, match=r"Subject value .* contains a line break"):
        check_header_value("Subject", f"Bill a{brk}b.csv processed")
    assert check_header_value("Subject", "Bill a b.csv\tprocessed") == "Bill a b.csv\tprocessed"


def bill(bill_id: str, file_name: str, rejected: int = 0) -> BillProcessed:
    return BillProcessed.create(
        BillSummary(
            bill_id=bill_id,
            file_name=file_name,
            checksum_sha256="0" * 64,
            format="focus",
            status="processed" if not rejected else "partially_rejected",
            billing_periods=["2024-09"],
            rows_read=10 + rejected,
            rows_accepted=10,
            rows_rejected=rejected,
            billed_cost_totals={"USD": Decimal("1.5")},
        ),
        source="billing-ingest",
        correlation_id=bill_id,
        occurred_at=AT,
    )


def test_a_bill_report_subject_with_u2028_is_refused_as_unsafe_not_a_value_error() -> None:
    view = bill_report_view(bill("b", "aws\u2028.csv").data, [], limit=20)
    with pytest.raises(UnsafeHeaderError):
        render(MessageKind.BILL_PROCESSED, "en", view)


@pytest.mark.integration
@pytest.mark.timeout(90)
async def test_the_running_service_dead_letters_the_bad_reports_and_mails_the_good_ones(
    infra: Infra, namespace: str, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = bill_report_view

    def view(summary: BillSummary, *args: Any, **kwargs: Any) -> BillReportView:
        if summary.bill_id == "bill-boom":  # a failure nobody foresaw, in this message only
            msg = "rejected rows of bill-boom are unreadable"
            raise RuntimeError(msg)
        return original(summary, *args, **kwargs)

    monkeypatch.setattr("billing_notify.service.notify_bill.bill_report_view", view)
    settings = notify_settings(infra, namespace, smtp_sink.port, operators=["ops@example.com"])
    dlq = dead_letter_name(Topic.BILL_PROCESSED, settings.topic_namespace)
    hostile = bill("bill-hostile", "aws\u2028Bcc: victim@example.com.csv")
    async with running(settings), TopicReader(infra.kafka_bootstrap_servers, dlq) as dead:
        # one key: one partition, one batch, the bad ones between the good ones
        await publish(
            settings,
            Topic.BILL_PROCESSED,
            "ops",
            bill("bill-1", "one.csv"),
            hostile,
            bill("bill-boom", "boom.csv", rejected=2),
            bill("bill-2", "two.csv"),
        )
        letters = await dead.wait_for(2)
        await consumed(settings, Topic.BILL_PROCESSED, "-bill-reports")
        # still up: the next report goes out
        await publish(settings, Topic.BILL_PROCESSED, "ops", bill("bill-3", "three.csv"))

        async def three_mails() -> bool:
            return len(smtp_sink.messages()) >= 3

        await eventually(three_mails, "three emails")
        await consumed(settings, Topic.BILL_PROCESSED, "-bill-reports")
    reasons: dict[str, Any] = {
        BillProcessed.model_validate_json(r.value).data.bill_id: dict(r.headers)["x-error"]
        for r in letters
    }
    assert set(reasons) == {"bill-hostile", "bill-boom"}
    assert reasons["bill-hostile"].startswith(b"UnsafeHeaderError: Subject value 'Bill aws\\u2028")
    assert b"contains a line break: refused (header injection)" in reasons["bill-hostile"]
    assert reasons["bill-boom"] == (
        b"unexpected RuntimeError: rejected rows of bill-boom are unreadable"
    )
    subjects = sorted(str(m["Subject"]).split(" ")[1] for m in sink_mails(smtp_sink.directory))
    assert subjects == ["one.csv", "three.csv", "two.csv"]
    assert len(dead.records) == 2


class FlakyPdfs:
    """A PDF store that fails with ``error`` once armed."""

    def __init__(self) -> None:
        self.error: Exception | None = None

    async def load(self, file_id: str) -> bytes:
        if self.error is not None:
            raise self.error
        return PDF


PDF = b"%PDF-1.7\n% stand-in\n%%EOF\n"


def _invoice_event() -> InvoiceFinalized:
    invoice = FinalizedInvoice(
        invoice_id="inv-1",
        invoice_number="ACME-2024-000001",
        customer_id="acme",
        customer_name="Acme GmbH",
        invoicing_entity_id="cumulus",
        period="2024-09",
        issue_date=date(2024, 10, 1),
        due_date=date(2024, 10, 31),
        currency="EUR",
        subtotal=Decimal(100),
        tax=Decimal(19),
        total=Decimal(119),
        outstanding=Decimal(119),
        line_count=1,
        pdf_file_id="pdf",
        pdf_sha256=hashlib.sha256(PDF).hexdigest(),
    )
    return InvoiceFinalized.create(invoice, source="t", correlation_id="c", occurred_at=AT)


async def test_a_scheduled_retry_that_fails_unexpectedly_is_failed_not_taken_forever() -> None:
    acme = Customer(
        id="acme",
        name="Acme GmbH",
        address=Address(lines=["Hauptstr. 1"], country="DE"),
        currency="EUR",
        invoicing_entity="cumulus",
        contacts=[Contact(email="ap@acme.example", roles=[ContactRole.BILLING])],
        price_list=PriceList(id="std"),
    )
    clock = [AT]
    pdfs = FlakyPdfs()
    log = InMemoryDeliveryLog(clock=lambda: clock[0])
    ports = NotifyPorts(
        customers=InMemoryCustomerDirectory(acme),
        pdfs=pdfs,
        deliveries=log,
        mailer=InMemoryMailer(failures=[TransientMailError("421 busy")]),
        clock=lambda: clock[0],
    )
    policy = MailPolicy(sender=parse_mailbox("billing@example.com"))
    lease = timedelta(minutes=5)
    first = await notify_invoice_finalized(_invoice_event(), ports, policy)
    assert first.result is Result.RETRY_SCHEDULED
    clock[0] += timedelta(hours=1)
    # the database not answering is not the message's fault: raised, taken again later
    pdfs.error = ServerSelectionTimeoutError("no server")
    with pytest.raises(ServerSelectionTimeoutError):
        await redrive_due(ports, policy, lease)
    clock[0] += lease
    pdfs.error = RuntimeError("a bug nobody foresaw")
    redriven = await redrive_due(ports, policy, lease)
    assert redriven is not None
    assert redriven.outcome.result is Result.FAILED  # the caller dead-letters its event
    assert redriven.outcome.reason == "unexpected RuntimeError: a bug nobody foresaw"
    clock[0] += lease
    assert await redrive_due(ports, policy, lease) is None  # never taken again
