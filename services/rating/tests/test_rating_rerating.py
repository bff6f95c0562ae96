"""A price list changes mid-period; re-rating emits only corrections, and the period then adds
up to a fresh rating under the new price list. Hand-computed."""

from __future__ import annotations

from decimal import Decimal

from rating_rerating_example import V1, V2, usage

from billing_catalog.pricing import PriceList
from billing_rating.domain.rating import CustomerPricing, rate_all
from billing_rating.domain.rerating import corrections

D = Decimal


BEFORE = CustomerPricing("acme", "USD", PriceList.model_validate({"id": "pl", "versions": [V1]}))
# mid-period change: from 2024-09-15 the markup is 20% and S3 keeps its tiers (same rule id)
AFTER = CustomerPricing("acme", "USD", PriceList.model_validate({"id": "pl", "versions": [V1, V2]}))

PERIOD = [
    usage("ec2-early", 3, "1", "100", "Amazon EC2"),
    usage("s3-early", 4, "80", "4", "Amazon S3"),
    usage("ec2-late", 20, "1", "50", "Amazon EC2"),
    usage("s3-late", 21, "40", "2", "Amazon S3"),
]


def test_a_mid_period_change_is_re_rated_as_corrections_that_add_up_to_a_fresh_rating() -> None:
    emitted, _ = rate_all(PERIOD, BEFORE)
    # before the change: 110, 8.00 (80 x 0.10), 55, 3.00 (20 x 0.10 + 20 x 0.05)
    assert [c.price for c in emitted] == [D(110), D(8), D(55), D(3)]

    fresh, _ = rate_all(PERIOD, AFTER)
    # ec2-late now falls under version 2: 50 x 1.20 = 60; the S3 tiers run on (same rule id)
    assert [c.price for c in fresh] == [D(110), D(8), D(60), D(3)]

    fixes = corrections(emitted, fresh)
    assert [(c.charge_id, c.price, c.cost, c.price_list_version) for c in fixes] == [
        ("ec2-late:rerated:1", D(5), D(0), 2)  # 60 - 55
    ]
    assert sum(c.price for c in emitted + fixes) == sum(c.price for c in fresh) == D(181)
    assert sum(c.cost for c in emitted + fixes) == sum(c.cost for c in fresh) == D(156)
    # running the same re-rating again finds nothing left to correct
    assert corrections(emitted + fixes, fresh) == []


def test_a_price_drop_is_a_negative_correction() -> None:
    emitted, _ = rate_all(PERIOD, AFTER)
    fresh, _ = rate_all(PERIOD, BEFORE)
    [fix] = corrections(emitted, fresh)
    assert (fix.charge_id, fix.price, fix.margin) == ("ec2-late:rerated:1", D(-5), D(-5))
