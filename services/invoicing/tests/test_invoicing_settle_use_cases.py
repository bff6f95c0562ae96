"""The settlement use cases (payments, credit notes, void, overdue) on the in-memory ports: the
``Invoice`` aggregate decides, a version-guarded save stores, then events are published.

One German customer, one invoice of 100.00 + 19 % VAT = 119.00 EUR issued 2024-10-01, due
2024-10-31. Figures are computed by hand.
"""

from __future__ import annotations

import ast
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from invoicing_test_support import Entities, issue

from billing_invoicing.adapters.memory import (
    InMemoryInvoiceEvents,
    InMemoryInvoiceRepository,
    InMemorySettlementRecords,
)
from billing_invoicing.domain.credit import CreditKind, balances
from billing_invoicing.domain.invoice import InvoiceStatus
from billing_invoicing.domain.model import Invoice
from billing_invoicing.domain.settlement import PaymentRecord, SettlementError
from billing_invoicing.service import settle_invoices
from billing_invoicing.service.settle_invoices import (
    SettlementPorts,
    dues,
    flag_overdue,
    issue_credit_note,
    record_payment,
)
from billing_schemas.events import InvoicePaid

D = Decimal
NUMBER = "CCR-2024-000001"


@pytest.fixture
async def ports() -> SettlementPorts:
    repo = InMemoryInvoiceRepository()
    await issue(repo)
    return SettlementPorts(Entities(), repo, InMemorySettlementRecords(), InMemoryInvoiceEvents())


def events_of(ports: SettlementPorts) -> InMemoryInvoiceEvents:
    assert isinstance(ports.events, InMemoryInvoiceEvents)
    return ports.events


async def pay(ports: SettlementPorts, amount: str, reference: str, method: str = "Card") -> Any:
    return await record_payment(
        ports,
        number=NUMBER,
        amount=D(amount),
        method=method,
        reference=reference,
        paid_on=date(2024, 10, 20),
        correlation_id="t",
    )


async def credit(ports: SettlementPorts, amount: str | None, reason: str) -> Any:
    return await issue_credit_note(
        ports,
        number=NUMBER,
        amount=None if amount is None else D(amount),
        reason=reason,
        issue_date=date(2024, 11, 2),
        correlation_id="t",
    )


async def test_payments_then_overpayment_become_customer_credit_once(
    ports: SettlementPorts,
) -> None:
    first = await pay(ports, "50.00", "BT-1", "bank transfer")
    assert (first.status, first.payment.outstanding_after) == (
        InvoiceStatus.PARTIALLY_PAID,
        D("69.00"),  # 119.00 - 50.00
    )
    again = await pay(ports, "50.00", "BT-1", "Bank transfer")
    assert again.already_recorded
    assert again.payment.outstanding_after == D("69.00")
    last = await pay(ports, "80.00", "CARD-7")
    # 50 + 80 = 130.00 against 119.00: 11.00 overpaid
    assert (last.status, last.customer_credit_added) == (InvoiceStatus.PAID, D("11.00"))
    await pay(ports, "80.00", "CARD-7")  # retried: nothing new
    stored = await ports.invoices.issued(NUMBER)
    assert stored is not None
    assert (stored.paid, stored.status, stored.settled_by) == (
        D("130.00"),
        InvoiceStatus.PAID,
        last.payment.payment_id,
    )
    ledger = await ports.settlements.credits_of("alpha")
    assert [(e.kind, e.amount) for e in ledger] == [(CreditKind.OVERPAYMENT, D("11.00"))]
    assert balances(ledger) == {"EUR": D("11.00")}
    events = events_of(ports)
    assert [e.data.amount for e in events.payments] == [D("50.00"), D("80.00")]
    [paid] = events.paid
    assert (paid.data.paid, paid.data.settled_by) == (D("130.00"), last.payment.payment_id)
    owed = await dues(ports, NUMBER)
    assert (owed.outstanding, owed.customer_credit, len(owed.payments)) == (D(0), D("11.00"), 2)


async def test_a_void_after_a_partial_credit_and_a_payment_turns_the_payment_into_credit(
    ports: SettlementPorts,
) -> None:
    sla = await credit(ports, "11.90", "SLA breach")
    # tax part 11.90 x 19 / 119 = 1.90
    [note] = await ports.settlements.credit_notes_of("alpha:2024-09")
    assert (note.number, note.tax, note.net) == ("CCR-CN-2024-000001", D("1.90"), D("10.00"))
    assert sla.status is InvoiceStatus.FINALIZED
    with pytest.raises(SettlementError, match=r"only 107\.10 is left"):
        await credit(ports, "200", "too much")
    await pay(ports, "107.10", "BT-9", "Bank transfer")
    void = await credit(ports, None, "issued in error")
    assert (void.status, void.credit_note.total, void.customer_credit_added) == (
        InvoiceStatus.VOID,
        D("107.10"),
        D("107.10"),
    )
    again = await credit(ports, None, "issued in error")
    assert again.already_issued
    events = events_of(ports)
    assert (len(events.credit_notes), len(events.voided), len(events.paid)) == (2, 1, 1)
    with pytest.raises(SettlementError, match="is void"):
        await pay(ports, "1.00", "late")
    with pytest.raises(SettlementError, match="is void already"):
        await credit(ports, "1.00", "after the void")


async def test_overdue_once_a_day_until_paid(ports: SettlementPorts) -> None:
    assert await flag_overdue(ports, as_of=date(2024, 10, 31), correlation_id="t") == []
    [late] = await flag_overdue(ports, as_of=date(2024, 11, 5), correlation_id="t")
    assert (late.days_overdue, late.outstanding) == (5, D("119.00"))
    assert (await pay(ports, "19.00", "C-1")).status is InvoiceStatus.OVERDUE
    [still] = await flag_overdue(ports, as_of=date(2024, 11, 6), correlation_id="t")
    assert (still.days_overdue, still.outstanding) == (6, D("100.00"))
    assert (await pay(ports, "100.00", "C-2")).status is InvoiceStatus.PAID
    assert await flag_overdue(ports, as_of=date(2024, 11, 7), correlation_id="t") == []
    assert [e.event_id for e in events_of(ports).overdue] == [
        "invoice-overdue:alpha:2024-09:2024-11-05",
        "invoice-overdue:alpha:2024-09:2024-11-06",
    ]


class RivalWriter(InMemoryInvoiceRepository):
    """Another writer (a second API replica) records a payment between this writer's load and
    its save, once."""

    rival_pending = True

    async def save_settlement(self, invoice: Invoice) -> None:
        if self.rival_pending:
            self.rival_pending = False
            rival = await self.issued(invoice.invoice_id)
            assert rival is not None
            rival.record_payment(
                PaymentRecord(
                    "pay-rival",
                    rival.invoice_id,
                    NUMBER,
                    "alpha",
                    D("19.00"),
                    "EUR",
                    "Card",
                    "RIVAL",
                    date(2024, 10, 19),
                )
            )
            await super().save_settlement(rival)
        await super().save_settlement(invoice)


async def test_a_concurrent_settlement_write_is_never_overwritten() -> None:
    repo = RivalWriter()
    await issue(repo)
    ports = SettlementPorts(Entities(), repo, InMemorySettlementRecords(), InMemoryInvoiceEvents())
    outcome = await pay(ports, "100.00", "BT-1")
    # the rival's 19.00 and this 100.00 both count: 119.00 paid, nothing outstanding
    assert outcome.status is InvoiceStatus.PAID
    stored = await repo.issued(NUMBER)
    assert stored is not None
    assert (stored.paid, sorted(stored.payment_ids)) == (
        D("119.00"),
        sorted(["pay-rival", outcome.payment.payment_id]),
    )


class FlakyEvents(InMemoryInvoiceEvents):
    """The broker refuses the first InvoicePaid (a crash between saving and publishing)."""

    refuse = True

    async def invoice_paid(self, event: InvoicePaid) -> None:
        if self.refuse:
            self.refuse = False
            msg = "broker unreachable"
            raise ConnectionError(msg)
        await super().invoice_paid(event)


async def test_an_announcement_lost_in_a_crash_is_made_by_the_retry_once() -> None:
    repo = InMemoryInvoiceRepository()
    await issue(repo)
    events = FlakyEvents()
    ports = SettlementPorts(Entities(), repo, InMemorySettlementRecords(), events)
    with pytest.raises(ConnectionError):
        await pay(ports, "119.00", "BT-1")
    stored = await repo.issued(NUMBER)
    assert stored is not None
    assert (stored.status, stored.paid_announced_at) == (InvoiceStatus.PAID, None)
    retry = await pay(ports, "119.00", "BT-1")
    assert retry.already_recorded
    await pay(ports, "119.00", "BT-1")
    [paid] = events.paid
    assert paid.event_id == "invoice-paid:alpha:2024-09"
    assert len(events.payments) == 1


SERVICE = Path(settle_invoices.__file__).parent


def raw_document_indexing(path: Path) -> list[str]:
    """Where a module reads a stored document's fields by name: ``x["field"]`` or
    ``x.get("field")`` with a string literal."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            found.append(f"{path.name}:{node.lineno}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(f"{path.name}:{node.lineno}")
    return found


STILL_ON_RAW_DOCUMENTS = {
    "generate_invoices.py",  # the close's outcome rows (list_invoices)
    "invoice_queries.py",  # the read side: lists, detail, margin report
    "einvoices.py",  # issued documents and credit notes by number
    "usage_csv.py",  # the CSV of stored charges
    "focus_export.py",  # the FOCUS dataset of stored charges (as the CSV)
    "credit_note_documents.py",  # an issued invoice and a credit note from their stored rows
    "audit_entries.py",  # a price list's versions in its JSON form (no stored document)
}
"""Use cases that still read stored documents (issue 12 point 1's rest): none may join them."""


def test_settlement_use_cases_never_index_a_raw_document() -> None:
    assert raw_document_indexing(SERVICE / "settle_invoices.py") == []
    offenders = {path.name for path in sorted(SERVICE.glob("*.py")) if raw_document_indexing(path)}
    assert offenders <= STILL_ON_RAW_DOCUMENTS, offenders - STILL_ON_RAW_DOCUMENTS
