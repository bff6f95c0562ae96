"""Channels: every topic is one, and a wrong pairing fails before anything is sent."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing_schemas.channels import (
    BY_TOPIC,
    CHANNELS,
    CHARGE_RATED,
    INVOICE_FINALIZED,
    RATING,
    USAGE_RECORDED,
    ChannelError,
    awaited_groups,
)
from billing_schemas.events import (
    ChargeCategory,
    LineType,
    PeriodClose,
    PeriodClosing,
    UsageRecord,
    UsageRecorded,
)
from billing_schemas.topics import Topic


def _usage() -> UsageRecorded:
    record = UsageRecord(
        record_id="r-1",
        provider="AWS",
        billing_account_id="999",
        sub_account_id="111",
        billing_period="2024-09",
        charge_period_start=datetime(2024, 9, 1, tzinfo=UTC),
        charge_period_end=datetime(2024, 9, 1, 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name="Amazon EC2",
        currency="USD",
        billed_cost=Decimal("1.50"),
    )
    return UsageRecorded.create(record, source="test", correlation_id="c")


def test_every_topic_is_exactly_one_channel() -> None:
    assert [c.topic for c in CHANNELS] == list(Topic)
    assert all(BY_TOPIC[topic].topic is topic for topic in Topic)


def test_an_event_of_another_type_cannot_be_put_on_a_channel() -> None:
    usage = _usage()
    assert USAGE_RECORDED.keyed([usage]) == [("111", usage)]
    with pytest.raises(ChannelError, match="UsageRecorded cannot be published on"):
        INVOICE_FINALIZED.keyed([usage])  # type: ignore[list-item]


def test_the_charge_stream_carries_charges_and_close_markers_keyed_by_customer() -> None:
    marker = PeriodClosing.create(
        PeriodClose(customer_id="acme", period="2024-09", issue_date=date(2024, 10, 1)),
        source="test",
        correlation_id="close",
    )
    assert CHARGE_RATED.keyed([marker]) == [("acme", marker)]
    assert CHARGE_RATED.decode(marker.model_dump_json().encode()) == marker
    with pytest.raises(ChannelError):
        CHARGE_RATED.check(_usage())


def test_a_consumer_group_must_be_declared_on_the_channel() -> None:
    assert USAGE_RECORDED.require(RATING) is RATING
    assert USAGE_RECORDED.group("rating") is RATING
    with pytest.raises(ChannelError, match="billing-rating is not declared on"):
        INVOICE_FINALIZED.require(RATING)
    with pytest.raises(ChannelError, match="billing-notify-payments is declared on"):
        INVOICE_FINALIZED.group("notify", "-payments")


def test_billing_wait_watches_rating_invoicing_and_every_notify_group() -> None:
    groups = dict(awaited_groups("ns."))
    assert groups["ns.billing-rating"] == ["ns.billing.usage.recorded.v1"]
    assert groups["ns.billing-invoicing"] == ["ns.billing.charge.rated.v1"]
    assert groups["ns.billing-notify"] == ["ns.billing.invoice.finalized.v1"]
    assert groups["ns.billing-notify-payments"] == ["ns.billing.payment.recorded.v1"]
    assert {g for g in groups if g.startswith("ns.billing-notify")} == {
        "ns.billing-notify",
        "ns.billing-notify-payments",
        "ns.billing-notify-credit-notes",
        "ns.billing-notify-reminders",
        "ns.billing-notify-bill-reports",
        "ns.billing-notify-reconcile-verdicts",
    }
    assert groups["ns.billing-notify-reconcile-verdicts"] == ["ns.billing.period.reconciled.v1"]
    assert len(groups) == 8
    assert dict(awaited_groups(bases={"rating": "mine"}))["mine"] == ["billing.usage.recorded.v1"]
