"""The restated-bill example shared by the restatement tests (over the ports' fakes, and on
the running service): one rule of each period-cumulative kind on Amazon S3, a bill of three
lines and its restatements, and the reversal ingest publishes for a line taken back."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rating_rerating_example import usage

from billing_catalog.pricing import PriceList
from billing_rating.domain.rating import CustomerPricing, rate_all
from billing_schemas.events import UsageRecord, UsageRecorded

D = Decimal

QUANTITY_TIERS = [{"up_to": "100", "unit_price": "0.10"}, {"unit_price": "0.05"}]
SPEND_TIERS = [{"up_to": "100", "percent": "20"}, {"percent": "10"}]
RULES: dict[str, dict[str, Any]] = {
    "graduated-quantity": {"kind": "tiered", "mode": "graduated", "tiers": QUANTITY_TIERS},
    "graduated-spend": {
        "kind": "tiered",
        "mode": "graduated",
        "measure": "spend",
        "tiers": SPEND_TIERS,
    },
    "volume-quantity": {"kind": "tiered", "mode": "volume", "tiers": QUANTITY_TIERS},
    "volume-spend": {"kind": "tiered", "mode": "volume", "measure": "spend", "tiers": SPEND_TIERS},
    "package": {"kind": "package", "size": "50", "price": "4"},
    "minimum": {"kind": "minimum", "amount": "30", "percent": "10"},
}


def pricing(rule: dict[str, Any], markup: str = "0") -> CustomerPricing:
    version = {
        "version": 1,
        "effective_from": "2024-01-01",
        "currency": "USD",
        "rules": [{"kind": "markup", "percent": markup}, {**rule, "service": "Amazon S3"}],
    }
    return CustomerPricing(
        "acme", "USD", PriceList.model_validate({"id": "pl", "versions": [version]})
    )


def line(rid: str, day: int, quantity: str, cost: str) -> UsageRecord:
    return usage(rid, day, quantity, cost, "Amazon S3")


def reversal(record: UsageRecord) -> UsageRecord:
    """What ingest publishes for a line a restated bill no longer holds."""
    assert record.pricing_quantity is not None
    return record.model_copy(
        update={
            "record_id": f"{record.record_id}~rev",
            "pricing_quantity": -record.pricing_quantity,
            "billed_cost": -record.billed_cost,
            "charge_class": "correction",
            "corrects_record_id": record.record_id,
        }
    )


def events(records: list[UsageRecord]) -> list[UsageRecorded]:
    return [UsageRecorded.create(r, source="t", correlation_id="c") for r in records]


def fresh_total(records: list[UsageRecord], customer: CustomerPricing) -> Decimal:
    charges, _ = rate_all(records, customer)
    return sum((c.price for c in charges), D(0))


A, B, C = line("a", 2, "80", "40"), line("b", 5, "40", "50"), line("c", 8, "30", "20")
B2, D4 = line("b2", 5, "30", "35"), line("d", 12, "70", "25")
VERSIONS = [[A, B, C], [A, B2], [A, B2, D4], [D4], []]
"""A bill and four restatements: b changed, c dropped; d added; a and b2 dropped; all dropped."""
