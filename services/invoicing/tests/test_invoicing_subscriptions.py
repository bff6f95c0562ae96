"""Subscriptions and the included infrastructure (steps 1, 2, 5, 6 of domain/invoice.py).

Pure: charge groups in, invoice out. Every figure is computed by hand in a comment.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billing_catalog.models import Customer, InvoicingEntity, Plan, Subscription, TaxRate
from billing_invoicing.domain.invoice import (
    ChargeGroup,
    InvoiceDocument,
    LineKind,
    active_subscriptions,
    assemble_invoice,
)

D = Decimal
PLANS = {
    "team": Plan(
        id="team", name="Team", currency="EUR", fee=D("200"), included_infrastructure=D(0)
    ),
    "business": Plan(
        id="business",
        name="Business",
        currency="EUR",
        fee=D("500.00"),
        included_infrastructure=D("400.00"),
    ),
}
RATES = [TaxRate(country="DE", percent=D("19"))]
ENTITY = InvoicingEntity.model_validate(
    {
        "id": "seller",
        "name": "Seller GmbH",
        "address": {"lines": ["Strasse 1"], "country": "DE"},
        "number_prefix": "S-",
        "email": "billing@seller.example",
    }
)


def customer(subscriptions: list[dict[str, Any]], **policy: str) -> Customer:
    return Customer.model_validate(
        {
            "id": "c1",
            "name": "Kunde AG",
            "address": {"lines": ["Weg 2"], "country": "DE"},
            "currency": "EUR",
            "invoicing_entity": "seller",
            "price_list": "p",
            "subscriptions": subscriptions,
            "included_infrastructure": policy,
        }
    )


BUSINESS = [{"plan": "business", "start": "2024-01-01"}]


def group(price: str, service: str = "Compute", period: str = "2024-09", **kw: Any) -> ChargeGroup:
    return ChargeGroup(
        provider="AWS",
        service_name=service,
        charge_count=3,
        cost=D(0),
        price=D(price),
        period=period,
        **kw,
    )


def assemble(buyer: Customer, *groups: ChargeGroup) -> InvoiceDocument:
    return assemble_invoice(
        customer=buyer,
        entity=ENTITY,
        period="2024-09",
        groups=list(groups),
        plans=PLANS,
        tax_rates=RATES,
    )


def amounts(inv: InvoiceDocument) -> list[tuple[LineKind, str, Decimal]]:
    return [(line.kind, line.description, line.amount) for line in inv.lines]


def test_underuse_gives_no_discount_by_default() -> None:
    # fee 500; cloud 250.00 < included 400 -> covered 250, underuse 150 not refunded
    # subtotal 500 + 250 - 250 = 500.00; VAT 19% = 95.00; total 595.00
    inv = assemble(customer(BUSINESS), group("250.00"))

    assert amounts(inv) == [
        (LineKind.SUBSCRIPTION, "Business subscription", D("500.00")),
        (LineKind.USAGE, "Compute (AWS)", D("250.00")),
        (LineKind.INCLUDED, "Included cloud infrastructure (plans)", D("-250.00")),
    ]
    assert inv.netting is not None
    assert (inv.netting.covered, inv.netting.underuse, inv.netting.overuse) == (
        D("250.00"),
        D("150.00"),
        D(0),
    )
    assert inv.netting.billed_cloud == D(0)
    assert (inv.subtotal, inv.tax, inv.total) == (D("500.00"), D("95.00"), D("595.00"))


def test_overuse_is_billed_as_overage_by_default() -> None:
    # cloud 300.004 + 150.003 = 450.007 > 400 -> covered 400, overage 50.007 billed
    # subtotal exact 500 + 450.007 - 400 = 550.007 -> 550.01
    # VAT 19% of the unrounded 550.007 = 104.50133 -> 104.50; total 654.51
    inv = assemble(customer(BUSINESS), group("300.004", "Compute"), group("150.003", "Storage"))

    assert inv.netting is not None
    assert (inv.netting.covered, inv.netting.overuse) == (D("400.00"), D("50.007"))
    assert inv.netting.billed_cloud == D("50.007")
    assert (inv.subtotal, inv.tax, inv.total) == (D("550.01"), D("104.50"), D("654.51"))
    # lines: floors 500.00 + 300.00 + 150.00 - 400.00 = 550.00, one cent missing -> the
    # largest remainder (Compute, 0.004) gets it
    assert [line.amount for line in inv.lines] == [D("500.00"), D("300.01"), D("150.00"), D("-400")]


def test_underuse_credited_when_the_customer_policy_says_so() -> None:
    # cloud 100 < 400: covered 100 and the unused 300 credited -> 500 + 100 - 100 - 300 = 200
    inv = assemble(customer(BUSINESS, underuse="credit"), group("100"))

    assert amounts(inv)[-1] == (
        LineKind.INCLUDED,
        "Unused included infrastructure credited",
        D("-300.00"),
    )
    assert inv.subtotal == D("200.00")
    assert inv.total == D("238.00")  # 200 x 1.19


def test_overage_waived_when_the_customer_policy_says_so() -> None:
    # cloud 650 > 400: covered 400, overage 250 waived -> 500 + 650 - 400 - 250 = 500
    inv = assemble(customer(BUSINESS, overuse="waive"), group("650"))

    assert amounts(inv)[-1] == (LineKind.INCLUDED, "Overage waived", D("-250.00"))
    assert inv.subtotal == D("500.00")


def test_quantities_add_fees_and_included_amounts_and_a_plan_without_infrastructure() -> None:
    # 2 x Business: fee 1000, included 800; Team: fee 200, includes nothing
    # cloud 900 -> covered 800, overage 100 -> 1000 + 200 + 900 - 800 = 1300.00
    subs: list[dict[str, Any]] = [
        {"plan": "business", "quantity": 2, "start": "2024-09-01"},
        {"plan": "team", "start": "2023-01-01"},
    ]
    inv = assemble(customer(subs), group("900"))

    assert [line.description for line in inv.lines[:2]] == [
        "Business subscription x 2",
        "Team subscription",
    ]
    assert inv.netting is not None
    assert inv.netting.included == D("800.00")
    assert inv.subtotal == D("1300.00")


def test_late_usage_is_a_dated_correction_line_not_netted() -> None:
    # September: cloud 100 (covered by the 400 included); August's late 40 is not netted:
    # 500 + 100 - 100 + 40 = 540.00
    inv = assemble(customer(BUSINESS), group("100"), group("40", period="2024-08"))

    last = inv.lines[-1]
    assert (last.kind, last.period, last.amount) == (LineKind.CORRECTION, "2024-08", D("40.00"))
    assert "usage of 2024-08" in last.description
    assert inv.subtotal == D("540.00")


def test_savings_removed_are_shown_not_charged_again() -> None:
    inv = assemble(customer(subscriptions=[]), group("132", savings_removed=D("120")))

    assert inv.netting is not None
    assert inv.netting.savings_removed == D("120")
    assert inv.subtotal == D("132.00")  # what rating priced; the saving is information


@pytest.mark.parametrize(
    ("start", "end", "active"),
    [
        ("2024-09-30", None, True),  # starts on the last day (prorated: 1/30)
        ("2024-10-01", None, False),
        ("2024-01-01", "2024-09-01", False),  # ended (exclusive) on the first day
        ("2024-01-01", "2024-09-02", True),
    ],
)
def test_which_subscriptions_a_period_bills(start: str, end: str | None, active: bool) -> None:
    sub = Subscription(
        plan="team", start=date.fromisoformat(start), end=end and date.fromisoformat(end)
    )
    assert (active_subscriptions([sub], "2024-09") == [sub]) is active
