"""What ``billing rate`` records in the audit trail once it published corrections."""

from __future__ import annotations

from decimal import Decimal

from billing_rating.entrypoints.cli import rerated
from billing_rating.service.rerate_period import RerateSummary


def test_a_rerating_is_recorded_with_its_corrections_and_differences() -> None:
    summary = RerateSummary(
        period="2024-09",
        customer_id="acme",
        records=120,
        differences={"EUR": Decimal("-12.50"), "USD": Decimal("3.10")},
        published=True,
    )
    entry = rerated(summary, "cli:alice")
    assert entry.action == "charges.rerated"
    assert entry.actor == "cli:alice"
    assert entry.subject == "period:2024-09"
    assert entry.customer_id == "acme"
    assert entry.summary == "re-rated 2024-09 (acme): 0 corrections, -12.50 EUR, 3.10 USD"
    assert entry.after == {
        "period": "2024-09",
        "customer_id": "acme",
        "records": 120,
        "corrections": 0,
        "differences": {"EUR": "-12.50", "USD": "3.10"},
        "charge_ids": [],
    }
