"""Proration (domain/proration.py): worked examples, every figure computed by hand here.

Plan "Business": fee 500.00 and 400.00 of included infrastructure per month, in EUR (2 minor
units). A span of d active days at quantity q in a month of n days is charged 500 x q x d / n
and includes 400 x q x d / n, each rounded once, half-up, to the cent.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from billing_catalog.models import Customer, InvoicingEntity, Plan, Subscription, TaxRate
from billing_invoicing.domain.invoice import ChargeGroup, LineKind, assemble_invoice
from billing_invoicing.domain.proration import prorate, subscription_spans

D = Decimal
BUSINESS = Plan(
    id="business", name="Business", currency="EUR", fee=D("500.00"),
    included_infrastructure=D("400.00"),
)  # fmt: skip
FLAT = Plan.model_validate({**BUSINESS.model_dump(), "proration": "none"})


def sub(start: str, end: str | None = None, quantity: int = 1, **changes: int) -> Subscription:
    """A Business subscription; ``changes`` maps ``dYYYY_MM_DD`` to the quantity from then."""
    return Subscription.model_validate(
        {
            "plan": "business",
            "start": start,
            "end": end,
            "quantity": quantity,
            "quantity_changes": [
                {"effective_from": day[1:].replace("_", "-"), "quantity": q}
                for day, q in changes.items()
            ],
        }
    )


def spans(subscription: Subscription, period: str, plan: Plan = BUSINESS) -> list[tuple[Any, ...]]:
    return [
        (s.first_day.day, s.last_day.day, s.quantity, s.days, s.fee, s.included)
        for s in subscription_spans(subscription, plan, period)
    ]


def test_started_on_the_10th_of_a_30_day_month() -> None:
    # September 2024 has 30 days; active 10th..30th = 21 days
    # fee 500 x 21/30 = 350.00; included 400 x 21/30 = 280.00
    assert spans(sub("2024-09-10"), "2024-09") == [(10, 30, 1, 21, D("350.00"), D("280.00"))]


def test_quantity_3_to_5_on_the_20th() -> None:
    # 1st..19th = 19 days at 3: fee 500 x 3 x 19/30 = 950.00, included 400 x 3 x 19/30 = 760.00
    # 20th..30th = 11 days at 5: fee 500 x 5 x 11/30 = 916.666... -> 916.67,
    #                            included 400 x 5 x 11/30 = 733.333... -> 733.33
    assert spans(sub("2024-01-01", quantity=3, d2024_09_20=5), "2024-09") == [
        (1, 19, 3, 19, D("950.00"), D("760.00")),
        (20, 30, 5, 11, D("916.67"), D("733.33")),
    ]
    # the months around it are whole: 3 in August, 5 in October, no rounding
    assert spans(sub("2024-01-01", quantity=3, d2024_09_20=5), "2024-08") == [
        (1, 31, 3, 31, D("1500.00"), D("1200.00"))
    ]
    assert spans(sub("2024-01-01", quantity=3, d2024_09_20=5), "2024-10") == [
        (1, 31, 5, 31, D("2500.00"), D("2000.00"))
    ]


def test_ended_on_the_25th() -> None:
    # end is exclusive: end 2024-09-25 means the last active day is the 24th: 24 days
    # fee 500 x 24/30 = 400.00; included 400 x 24/30 = 320.00
    assert spans(sub("2024-01-01", end="2024-09-25"), "2024-09") == [
        (1, 24, 1, 24, D("400.00"), D("320.00"))
    ]
    assert spans(sub("2024-01-01", end="2024-09-25"), "2024-10") == []


def test_started_changed_and_ended_in_one_month() -> None:
    # 10th..19th = 10 days at 3: 500 x 3 x 10/30 = 500.00; 400 x 3 x 10/30 = 400.00
    # 20th..24th = 5 days at 5: 500 x 5 x 5/30 = 416.666... -> 416.67; 400 x 5 x 5/30 = 333.33
    assert spans(sub("2024-09-10", end="2024-09-25", quantity=3, d2024_09_20=5), "2024-09") == [
        (10, 19, 3, 10, D("500.00"), D("400.00")),
        (20, 24, 5, 5, D("416.67"), D("333.33")),
    ]


def test_february_of_28_and_of_29_days() -> None:
    # February 2025 (28 days), started on the 10th: 10th..28th = 19 days
    #   fee 500 x 19/28 = 339.2857... -> 339.29; included 400 x 19/28 = 271.4285... -> 271.43
    assert spans(sub("2025-02-10"), "2025-02") == [(10, 28, 1, 19, D("339.29"), D("271.43"))]
    # February 2024 (29 days, leap year), started on the 10th: 10th..29th = 20 days
    #   fee 500 x 20/29 = 344.8275... -> 344.83; included 400 x 20/29 = 275.8620... -> 275.86
    assert spans(sub("2024-02-10"), "2024-02") == [(10, 29, 1, 20, D("344.83"), D("275.86"))]
    # one day of February 2025: 500 / 28 = 17.857... -> 17.86
    assert spans(sub("2025-01-01", end="2025-02-02"), "2025-02") == [
        (1, 1, 1, 1, D("17.86"), D("14.29"))
    ]  # 400 / 28 = 14.2857... -> 14.29


def test_rounding_is_half_up_once_per_span() -> None:
    # 100.01 x 15/30 = 50.005 exactly: half-up gives 50.01 (half-even would give 50.00)
    assert prorate(D("100.01"), 15, 30, "EUR") == D("50.01")
    # JPY has no minor unit: 1000 x 10/30 = 333.33... -> 333; 1000 x 15/30 = 500
    assert prorate(D("1000"), 10, 30, "JPY") == D("333")
    # the whole period is the amount itself, not rounded
    assert prorate(D("500.005"), 30, 30, "EUR") == D("500.005")


def test_proration_none_charges_the_whole_period_at_the_first_days_quantity() -> None:
    # today's behaviour: started on the 10th -> the whole fee 500.00, included 400.00
    assert spans(sub("2024-09-10"), "2024-09", FLAT) == [(1, 30, 1, 30, D("500.00"), D("400.00"))]
    # 3 -> 5 on the 20th: the period is charged at 3 (the change counts from October)
    assert spans(sub("2024-01-01", quantity=3, d2024_09_20=5), "2024-09", FLAT) == [
        (1, 30, 3, 30, D("1500.00"), D("1200.00"))
    ]
    assert spans(sub("2024-01-01", quantity=3, d2024_09_20=5), "2024-10", FLAT)[0][2] == 5


def test_a_change_to_the_same_quantity_does_not_split_the_month() -> None:
    assert spans(sub("2024-01-01", quantity=2, d2024_09_20=2), "2024-09") == [
        (1, 30, 2, 30, D("1000.00"), D("800.00"))
    ]


ENTITY = InvoicingEntity.model_validate(
    {
        "id": "seller",
        "name": "Seller GmbH",
        "address": {"lines": ["Strasse 1"], "country": "DE"},
        "number_prefix": "S-",
        "email": "billing@seller.example",
    }
)


def test_the_invoice_charges_and_nets_the_prorated_amounts() -> None:
    # September, started on the 10th at 3, 5 from the 20th, no end:
    #   10th..19th = 10 days at 3: 500 x 3 x 10/30 = 500.00, included 400 x 3 x 10/30 = 400.00
    #   20th..30th = 11 days at 5: 916.67, included 733.33 (as above)
    # included 400.00 + 733.33 = 1133.33; cloud 1200.00 -> covered 1133.33, overage 66.67
    # subtotal 500.00 + 916.67 + 1200.00 - 1133.33 = 1483.34; VAT 19% = 281.8346 -> 281.83
    customer = Customer.model_validate(
        {
            "id": "c1",
            "name": "Kunde AG",
            "address": {"lines": ["Weg 2"], "country": "DE"},
            "currency": "EUR",
            "invoicing_entity": "seller",
            "price_list": "p",
            "subscriptions": [
                {
                    "plan": "business",
                    "quantity": 3,
                    "start": "2024-09-10",
                    "quantity_changes": [{"effective_from": "2024-09-20", "quantity": 5}],
                }
            ],
        }
    )
    inv = assemble_invoice(
        customer=customer,
        entity=ENTITY,
        period="2024-09",
        groups=[
            ChargeGroup(
                provider="AWS",
                service_name="Compute",
                charge_count=1,
                cost=D(0),
                price=D("1200.00"),
                period="2024-09",
            )
        ],
        plans={"business": BUSINESS},
        tax_rates=[TaxRate(country="DE", percent=D("19"))],
    )
    assert [(line.kind, line.description, line.amount) for line in inv.lines] == [
        (
            LineKind.SUBSCRIPTION,
            "Business subscription x 3, 2024-09-10 to 2024-09-19 (10/30 days)",
            D("500.00"),
        ),
        (
            LineKind.SUBSCRIPTION,
            "Business subscription x 5, 2024-09-20 to 2024-09-30 (11/30 days)",
            D("916.67"),
        ),
        (LineKind.USAGE, "Compute (AWS)", D("1200.00")),
        (LineKind.INCLUDED, "Included cloud infrastructure (plans)", D("-1133.33")),
    ]
    assert inv.netting is not None
    assert (inv.netting.included, inv.netting.overuse) == (D("1133.33"), D("66.67"))
    assert (inv.subtotal, inv.tax, inv.total) == (D("1483.34"), D("281.83"), D("1765.17"))


@pytest.mark.parametrize(
    ("changes", "end", "message"),
    [
        ([{"effective_from": "2024-09-01", "quantity": 2}], None, "is not after start 2024-09-01"),
        (
            [
                {"effective_from": "2024-09-20", "quantity": 2},
                {"effective_from": "2024-09-15", "quantity": 3},
            ],
            None,
            "quantity_changes[1]: effective_from 2024-09-15 is not after quantity_changes[0]",
        ),
        (
            [{"effective_from": "2024-10-01", "quantity": 2}],
            "2024-10-01",
            "effective_from 2024-10-01 is not before end 2024-10-01",
        ),
        ([{"effective_from": "2024-09-20", "quantity": 0}], None, "greater than or equal to 1"),
    ],
)
def test_quantity_changes_are_checked(
    changes: list[dict[str, Any]], end: str | None, message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Subscription.model_validate(
            {"plan": "b", "start": "2024-09-01", "end": end, "quantity_changes": changes}
        )


def test_quantity_on() -> None:
    s = sub("2024-09-01", quantity=3, d2024_09_20=5, d2024_10_05=1)
    assert [s.quantity_on(date(2024, 9, d)) for d in (1, 19, 20, 30)] == [3, 3, 5, 5]
    assert s.quantity_on(date(2024, 10, 5)) == 1
