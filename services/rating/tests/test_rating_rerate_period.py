"""The re-rating use case over its ports' fakes: records kept by the rating of a batch are
re-rated with today's catalog; only differences are published, once. Hand-computed."""

from __future__ import annotations

from decimal import Decimal

from rating_rerating_example import V1, V2
from rating_rerating_example import usage as example_usage

from billing_catalog.pricing import PriceList
from billing_rating.adapters.memory import (
    InMemoryChargePublisher,
    InMemoryPricingCatalog,
    InMemoryRatedStore,
    InMemoryTierStore,
)
from billing_rating.domain.rating import CustomerPricing
from billing_rating.service.rate_batch import rate_batch
from billing_rating.service.rerate_period import rerate_period
from billing_schemas.events import UsageRecorded

D = Decimal


def usage(rid: str, day: int, quantity: str, cost: str, service: str) -> UsageRecorded:
    record = example_usage(rid, day, quantity, cost, service)
    return UsageRecorded.create(record, source="t", correlation_id="c")


def pricing(*versions: dict[str, object], customer: str = "acme") -> CustomerPricing:
    return CustomerPricing(
        customer, "USD", PriceList.model_validate({"id": "pl", "versions": list(versions)})
    )


async def test_only_the_changed_record_is_corrected_once_and_a_dry_run_publishes_nothing() -> None:
    catalog = InMemoryPricingCatalog({"AWS:111": pricing(V1)})
    kept, tiers = InMemoryRatedStore(), InMemoryTierStore()
    # the late S3 record is rated first (batch 1), the early one after (batch 2): a fresh
    # rating must place them in that same order, or the tier split would move between them
    await rate_batch(
        [
            usage("ec2-late", 20, "1", "50", "Amazon EC2"),
            usage("s3-late", 21, "80", "4", "Amazon S3"),
        ],
        catalog,
        tiers,
        kept,
    )
    first = await rate_batch(
        [
            usage("ec2-early", 3, "1", "100", "Amazon EC2"),
            usage("s3-early", 4, "40", "2", "Amazon S3"),
        ],
        catalog,
        tiers,
        kept,
    )
    # s3-early comes after s3-late's 80 units: 20 x 0.10 + 20 x 0.05 = 3.00
    assert [e.data.price for _, e in first.charges] == [D(110), D(3)]

    publisher = InMemoryChargePublisher()
    unchanged = await rerate_period(
        "2024-09",
        customer_id=None,
        catalog=catalog,
        kept=kept,
        publisher=publisher,
        correlation_id="r0",
    )
    assert (unchanged.records, unchanged.corrections, publisher.published) == (4, [], [])

    catalog.pricing["AWS:111"] = pricing(V1, V2)  # a version effective from the 15th
    dry = await rerate_period(
        "2024-09",
        customer_id="acme",
        catalog=catalog,
        kept=kept,
        publisher=None,
        correlation_id="r1",
    )
    # ec2-late (the 20th) now has 20%: 50 x 1.20 = 60 instead of 55 -> +5; nothing else moves
    assert [(c.charge_id, c.price) for c in dry.corrections] == [("ec2-late:rerated:1", D(5))]
    # a correction: the invoice shows it on a line of its own (issue 14 item 8)
    assert [c.charge_class for c in dry.corrections] == ["correction"]
    assert (dry.published, publisher.published) == (False, [])

    done = await rerate_period(
        "2024-09",
        customer_id=None,
        catalog=catalog,
        kept=kept,
        publisher=publisher,
        correlation_id="r2",
    )
    assert done.differences == {"USD": D(5)}
    [event] = publisher.published
    assert (
        event.event_id,
        event.data.cost,
        event.data.price_list_version,
        event.correlation_id,
    ) == (
        "charge-rated:ec2-late:rerated:1",
        D(0),
        2,
        "r2",
    )
    # charged now: 110 + 8 (s3-late: 80 x 0.10) + 55 + 5 + 3 = 181 = a fresh rating under v2:
    # 110 + 3 + 60 + 8
    charged = sum(r.emitted.price for r in await kept.period("2024-09"))
    assert charged == D(181)

    again = await rerate_period(
        "2024-09",
        customer_id=None,
        catalog=catalog,
        kept=kept,
        publisher=publisher,
        correlation_id="r3",
    )
    assert (again.corrections, len(publisher.published)) == ([], 1)


async def test_a_record_whose_account_moved_or_left_is_named_and_the_rest_re_rated() -> None:
    catalog = InMemoryPricingCatalog(
        {"AWS:111": pricing(V1), "AWS:222": pricing(V1, customer="other")}
    )
    kept = InMemoryRatedStore()
    moved = usage("m", 3, "1", "10", "Amazon EC2")
    moved = moved.model_copy(
        update={"data": moved.data.model_copy(update={"sub_account_id": "222"})}
    )
    await rate_batch(
        [usage("stays", 20, "1", "50", "Amazon EC2"), moved], catalog, InMemoryTierStore(), kept
    )
    catalog.pricing = {"AWS:111": pricing(V1, V2), "AWS:222": pricing(V1, customer="acme")}
    summary = await rerate_period(
        "2024-09",
        customer_id=None,
        catalog=catalog,
        kept=kept,
        publisher=None,
        correlation_id="r",
    )
    assert summary.records == 1
    assert [c.charge_id for c in summary.corrections] == ["stays:rerated:1"]  # 60 - 55
    assert summary.skipped == [
        "record m: account 'AWS:222' now belongs to 'acme', its charges went to 'other'"
    ]
