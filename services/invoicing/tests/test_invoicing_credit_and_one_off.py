"""Customer credit applied at finalization, and one-off charges: the rules with hand-computed
figures (pure and in-memory), then the close on FerretDB, delivered twice and crashing between
its writes.

The customer is German (19 % VAT, EUR, 30 days). September: 100.00 + 19.00 = 119.00, paid
130.00: 11.00 of credit. October: 50.00 + 9.50 = 59.50: 11.00 of credit taken, 48.50 due.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from einvoice_cases import SELLER, customer, finalized, group
from invoicing_test_support import SETTLE_CATALOG, Entities, issue, rated
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import EInvoiceFormat
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.einvoice import einvoice_xml, read_amounts
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.memory import (
    InMemoryInvoiceEvents,
    InMemoryInvoicePdfStore,
    InMemoryInvoiceRepository,
)
from billing_invoicing.adapters.pdf import render_invoice_html
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.domain.access import ForbiddenError, Scope
from billing_invoicing.domain.credit import CreditEntry, CreditKind, balances, credit_to_apply
from billing_invoicing.domain.einvoice import (
    einvoice_from_invoice,
    routing_for,
    seller_details_for,
)
from billing_invoicing.domain.invoice import (
    ChargeGroup,
    InvoiceStatus,
    LineKind,
    assemble_invoice,
    with_credit_applied,
)
from billing_invoicing.domain.model import CreditTaken, Invoice
from billing_invoicing.domain.one_off import (
    ONE_OFF,
    ONE_OFF_EXEMPT,
    OneOffCharge,
    OneOffChargeError,
    OneOffTax,
    rated_one_off,
)
from billing_invoicing.domain.settlement import Settlement
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges
from billing_invoicing.service.generate_invoices import InvoicingPorts, close_invoice
from billing_invoicing.service.one_off_charges import OneOffPorts, add_one_off_charge
from billing_invoicing.service.settle_invoices import SettlementPorts, dues, record_payment
from billing_schemas.events import ChargeRated, PeriodClose, PeriodClosing

D = Decimal
OPERATOR = Scope(customer_id=None)


@pytest.mark.parametrize(
    ("balance", "total", "applied"),
    [
        ("11.00", "59.50", "11.00"),  # all of the balance: 48.50 left to pay
        ("119.00", "59.50", "59.50"),  # up to the total: nothing to pay, 59.50 kept
        ("30.00", "-59.50", "0"),  # a negative invoice takes nothing (it gives credit)
        ("-5.00", "59.50", "0"),  # never from a negative balance
        ("0", "59.50", "0"),
    ],
)
def test_credit_to_apply_takes_the_balance_up_to_the_total(
    balance: str, total: str, applied: str
) -> None:
    assert credit_to_apply(D(balance), D(total)) == D(applied)


def october(credit: Decimal = Decimal(0)) -> Any:
    [customer], [entity] = SETTLE_CATALOG.customers, SETTLE_CATALOG.invoicing_entities
    groups = [ChargeGroup(provider="AWS", service_name="Amazon EC2", charge_count=1,
                          cost=D(40), price=D("50.00"), period="2024-10")]  # fmt: skip
    draft = assemble_invoice(
        customer=customer,
        entity=entity,
        period="2024-10",
        groups=groups,
        tax_rates=SETTLE_CATALOG.tax_rates,
    )
    return with_credit_applied(draft, credit)


def test_credit_applied_is_taken_after_tax_and_never_below_zero_due() -> None:
    document = october(D("11.00"))
    # 50.00 + 19 % = 59.50; 11.00 of credit: 48.50 due; lines, tax and total unchanged
    assert (document.subtotal, document.tax, document.total) == (D("50.00"), D("9.50"), D("59.50"))
    assert (document.credit_applied, document.outstanding) == (D("11.00"), D("48.50"))
    assert october(D("59.50")).outstanding == D(0)
    with pytest.raises(ValueError, match=r"cannot apply 59\.51 of credit to 59\.50 due"):
        october(D("59.51"))
    html = " ".join(render_invoice_html(document).split())
    assert "Credit applied</th><td>-€11.00" in html
    assert "Amount due</th><td>€48.50" in html
    covered = " ".join(render_invoice_html(october(D("59.50"))).split())
    assert "Credit on your account" in covered
    assert "Please pay" not in covered


def test_credit_applied_settles_like_a_payment_and_a_void_gives_it_back() -> None:
    standing = Settlement(total=D("59.50"), paid=D(0), credited=D(0), credit_applied=D("11.00"))
    assert (standing.outstanding, standing.status) == (D("48.50"), InvoiceStatus.PARTIALLY_PAID)
    paid = Settlement(total=D("59.50"), paid=D("48.50"), credited=D(0), credit_applied=D("11"))
    assert (paid.outstanding, paid.overpaid, paid.status) == (D(0), D(0), InvoiceStatus.PAID)
    void = Settlement(
        total=D("59.50"), paid=D("48.50"), credited=D("59.50"), voided=True, credit_applied=D(11)
    )
    # everything credited: the 48.50 paid and the 11.00 of credit taken go back to the balance
    assert (void.outstanding, void.overpaid) == (D(0), D("59.50"))


def test_take_credit_is_decided_once() -> None:
    invoice = Invoice.new("alpha:2024-10")
    invoice.start_finalizing(date(2024, 11, 1), None)
    [taken] = invoice.take_credit(D("11.00"), D("59.50"), "EUR")
    assert taken == CreditTaken("alpha:2024-10", "alpha", "EUR", D("11.00"))
    assert invoice.credit_applied == D("11.00")
    assert invoice.take_credit(D("500.00"), D("59.50"), "EUR") == []  # a close run again
    assert invoice.credit_applied == D("11.00")


def test_balances_never_mix_currencies() -> None:
    entries = [
        CreditEntry("overpayment:1", "alpha", "EUR", D("11.00"), CreditKind.OVERPAYMENT, "x"),
        CreditEntry("overpayment:2", "alpha", "USD", D("20.00"), CreditKind.OVERPAYMENT, "x"),
        CreditEntry("applied:a:1", "alpha", "EUR", D("-11.00"), CreditKind.APPLIED, "x"),
    ]
    assert balances(entries) == {"EUR": D("0.00"), "USD": D("20.00")}


def test_one_off_lines_are_their_own_and_exempt_ones_carry_no_vat() -> None:
    [customer] = SETTLE_CATALOG.customers
    setup = rated_one_off(
        OneOffCharge("alpha", "2024-09", "Setup fee", D(2), D("150.00")), customer
    )
    hardware = rated_one_off(
        OneOffCharge("alpha", "2024-09", "Hardware", D(1), D("50.00"), OneOffTax.EXEMPT),
        customer,
    )
    assert (setup.price, setup.provider, setup.currency) == (D("300.00"), ONE_OFF, "EUR")
    assert hardware.provider == ONE_OFF_EXEMPT
    again = rated_one_off(
        OneOffCharge("alpha", "2024-09", " Setup fee ", D("2.0"), D(150)), customer
    )
    assert again.charge_id == setup.charge_id  # the same charge: the same id
    mine = rated_one_off(
        OneOffCharge("alpha", "2024-09", "Setup fee", D(2), D(150), charge_id="T-1"), customer
    )
    assert mine.charge_id == "one-off:alpha:T-1"
    groups = [
        ChargeGroup(provider="AWS", service_name="Amazon EC2", charge_count=1, cost=D(80),
                    price=D("100.00"), period="2024-09"),
        ChargeGroup(provider=ONE_OFF, service_name="Setup fee", charge_count=1, cost=D(0),
                    price=D("300.00"), period="2024-09"),
        ChargeGroup(provider=ONE_OFF_EXEMPT, service_name="Hardware", charge_count=1,
                    cost=D(0), price=D("50.00"), period="2024-09"),
    ]  # fmt: skip
    [entity] = SETTLE_CATALOG.invoicing_entities
    document = assemble_invoice(
        customer=customer,
        entity=entity,
        period="2024-09",
        groups=groups,
        tax_rates=SETTLE_CATALOG.tax_rates,
    )
    assert [(x.description, x.kind, x.amount) for x in document.lines] == [
        ("Amazon EC2 (AWS)", LineKind.USAGE, D("100.00")),
        ("Hardware", LineKind.ONE_OFF, D("50.00")),
        ("Setup fee", LineKind.ONE_OFF, D("300.00")),
    ]
    # 19 % on 100.00 + 300.00 = 76.00; the exempt 50.00 carries 0.00; 450.00 + 76.00 = 526.00
    assert [(t.label, t.base, t.tax) for t in document.taxes] == [
        ("VAT 19% (DE)", D("400.00"), D("76.00")),
        ("VAT 0% (exempt)", D("50.00"), D("0.00")),
    ]
    assert (document.subtotal, document.tax, document.total) == (D("450.00"), D(76), D(526))
    assert document.tax_mention is not None
    assert "exempt" in document.tax_mention


@pytest.mark.parametrize(
    ("charge", "message"),
    [
        (OneOffCharge("alpha", "2024-09", " ", D(1), D(1)), "needs a description"),
        (OneOffCharge("alpha", "2024-13", "x", D(1), D(1)), "is not YYYY-MM"),
        (OneOffCharge("alpha", "2024-09", "x", D(0), D(1)), "quantity must be positive"),
        (OneOffCharge("alpha", "2024-09", "x", D(1), D(0)), "must not be zero"),
    ],
)
def test_a_one_off_charge_that_cannot_be_is_refused(charge: OneOffCharge, message: str) -> None:
    with pytest.raises(OneOffChargeError, match=message):
        rated_one_off(charge, SETTLE_CATALOG.customers[0])


class Customers:
    async def customer(self, customer_id: str) -> Any:
        return next((c for c in SETTLE_CATALOG.customers if c.id == customer_id), None)


class ConsumingStream(InMemoryInvoiceEvents):
    """The charge stream with its consumer: a charge sent is put on its draft at once."""

    def __init__(self, invoices: InMemoryInvoiceRepository) -> None:
        super().__init__()
        self.invoices = invoices

    async def charge_added(self, event: ChargeRated) -> None:
        await super().charge_added(event)
        await add_charges(self.invoices, [PositionedCharge(event.data)])


async def test_a_one_off_charge_is_on_the_draft_once_and_never_on_an_issued_invoice() -> None:
    repo = InMemoryInvoiceRepository()
    stream = ConsumingStream(repo)
    ports = OneOffPorts(Customers(), repo, stream)
    charge = OneOffCharge("alpha", "2024-10", "Support hours", D("1.5"), D("80.00"))
    outcome = await add_one_off_charge(ports, OPERATOR, charge, correlation_id="t")
    # 1.5 x 80.00 = 120.00, on the October draft
    assert (outcome.amount, outcome.invoice_id, outcome.on_draft) == (
        D("120.00"),
        "alpha:2024-10",
        True,
    )
    again = await add_one_off_charge(ports, OPERATOR, charge, correlation_id="t")
    assert again.already_added
    assert len(stream.charges) == 1
    sums = await repo.draft_sums("alpha:2024-10")
    assert sums is not None
    assert [(line.key, line.price) for line in sums.lines.values()] == [
        (("2024-10", ONE_OFF, "Support hours", "purchase"), D("120.00"))
    ]
    with pytest.raises(ForbiddenError):
        await add_one_off_charge(ports, Scope(customer_id="alpha"), charge, correlation_id="t")
    await issue(repo)  # September is issued
    late = OneOffCharge("alpha", "2024-09", "Setup fee", D(1), D(10))
    with pytest.raises(OneOffChargeError, match="is finalized already"):
        await add_one_off_charge(ports, OPERATOR, late, correlation_id="t")


class CrashingLedger(MongoSettlementRepository):
    """Refuses the first ledger write of an applied credit (a crash after the invoice was
    saved with the credit it takes)."""

    crash = True

    async def add_credit(self, entry: CreditEntry) -> bool:
        if self.crash and entry.kind is CreditKind.APPLIED:
            self.crash = False
            raise ConnectionError
        return await super().add_credit(entry)


@pytest.mark.integration
async def test_the_close_applies_the_credit_once_under_redelivery_and_a_crash(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    catalog = MongoCatalogRepository(mongo_db)
    await catalog.apply(SETTLE_CATALOG)
    invoices = MongoInvoiceRepository(mongo_db)
    await invoices.ensure_indexes()
    ledger = CrashingLedger(mongo_db)
    await ledger.ensure_indexes()
    events = InMemoryInvoiceEvents()
    closing = InvoicingPorts(
        catalog, invoices, Renderer(), InMemoryInvoicePdfStore(), events, ledger
    )
    settling = SettlementPorts(Entities(), invoices, ledger, events)

    def marker(period: str, day: date) -> PeriodClosing:
        close = PeriodClose(customer_id="alpha", period=period, issue_date=day)
        return PeriodClosing.create(close, source="t", correlation_id="t")

    await add_charges(invoices, [PositionedCharge(rated("c1", price="100.00"))])
    september = await close_invoice(closing, marker("2024-09", date(2024, 10, 1)))
    assert september.total == D("119.00")  # 100.00 + 19 %; no credit yet
    await record_payment(settling, number=str(september.number), amount=D("130.00"),
                         method="Card", reference="R-1", paid_on=date(2024, 10, 5),
                         correlation_id="t")  # fmt: skip
    # a USD credit (from before the customer's currency changed) is never applied to EUR
    await ledger.add_credit(
        CreditEntry(
            "overpayment:usd",
            "alpha",
            "USD",
            D("20.00"),
            CreditKind.OVERPAYMENT,
            "old",
            recorded_at=datetime(2024, 1, 1, tzinfo=UTC),
        )
    )

    await add_charges(invoices, [PositionedCharge(rated("c2", price="50.00", period="2024-10"))])
    with pytest.raises(ConnectionError):
        await close_invoice(closing, marker("2024-10", date(2024, 11, 1)))
    frozen = await invoices.get("alpha:2024-10")
    assert frozen is not None
    assert (frozen.status, frozen.credit_applied) == (InvoiceStatus.FINALIZING, D("11.00"))
    for _ in range(2):  # the marker again after the crash, then once more
        outcome = await close_invoice(closing, marker("2024-10", date(2024, 11, 1)))
    assert outcome.action == "already finalized"
    [announced] = [e for e in events.finalized if e.data.period == "2024-10"]
    # 50.00 + 9.50 = 59.50; 11.00 of credit taken: 48.50 due
    assert (announced.data.total, announced.data.outstanding) == (D("59.50"), D("48.50"))
    entries = await ledger.credits_of("alpha")
    assert {(e.entry_id, e.amount) for e in entries} == {
        ("applied:alpha:2024-10", D("-11.00")),
        ("overpayment:usd", D("20.00")),
        (f"overpayment:{september_payment(entries)}", D("11.00")),
    }
    assert balances(entries) == {"EUR": D("0.00"), "USD": D("20.00")}
    owed = await dues(settling, str(announced.data.invoice_number))
    assert (owed.credit_applied, owed.outstanding, owed.status) == (
        D("11.00"),
        D("48.50"),
        "finalized",
    )
    paid = await record_payment(settling, number=str(announced.data.invoice_number),
                                amount=D("48.50"), method="Card", reference="R-2",
                                paid_on=date(2024, 11, 20), correlation_id="t")  # fmt: skip
    assert (paid.status, paid.customer_credit_added) == (InvoiceStatus.PAID, D(0))


def september_payment(entries: list[CreditEntry]) -> str:
    [entry] = [e for e in entries if e.invoice_id == "alpha:2024-09"]
    return entry.entry_id.removeprefix("overpayment:")


class Renderer:
    async def render(self, invoice: Any) -> bytes:
        return f"%PDF-stand-in {invoice.number}".encode()


@pytest.mark.parametrize("fmt", list(EInvoiceFormat))
def test_the_einvoice_states_the_credit_applied_as_prepaid(fmt: EInvoiceFormat) -> None:
    # 100.00 + 19 % = 119.00, 20.00 of credit applied: BT-113 20.00, BT-115 99.00
    buyer = customer("alpha", "DE", vat_id="DE987654328")
    invoice = with_credit_applied(finalized(buyer, [group("100.00", "EC2")], 9), D("20.00"))
    document = einvoice_from_invoice(invoice, routing_for(buyer), seller_details_for(SELLER))
    assert (document.grand_total, document.prepaid, document.payable) == (
        D("119.00"),
        D("20.00"),
        D("99.00"),
    )
    xml = einvoice_xml(document, fmt)
    assert read_amounts(xml)["BT-115"] == D("99.00")
    assert b"PrepaidAmount" in xml
