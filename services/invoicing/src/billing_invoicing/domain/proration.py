"""Proration: what a subscription owes, and includes, for the days of a period it was active.

The rule (docs/catalog.md, "Proration"; rounding in docs/money.md):

- A period is a calendar month; a subscription is active from its ``start`` to the day before
  its ``end`` (exclusive), and its quantity changes on the ``effective_from`` day of each
  quantity change.
- With ``proration: daily`` (the default), the active days of the period are split into spans
  of one quantity. A span of ``d`` days at quantity ``q`` in a month of ``n`` days is charged
  ``fee x q x d / n`` and includes ``included_infrastructure x q x d / n``, each rounded once,
  half-up, to the currency's minor units. A span covering the whole month is charged
  ``fee x q`` exactly, as without proration.
- With ``proration: none``, a subscription active on any day of the period pays the whole
  period at the quantity in force on its first active day in the period (a change inside the
  period counts from the next period).

Example (September, 30 days; fee 500.00): started on the 10th at quantity 3, 5 from the 20th,
ended on the 25th (exclusive): 10 days x 3 -> 500 x 3 x 10/30 = 500.00 and 5 days x 5 ->
500 x 5 x 5/30 = 416.666... -> 416.67.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal, localcontext

from pydantic import BaseModel, ConfigDict, Field

from billing_catalog.models import Plan, Proration, Subscription
from billing_schemas.money import round_to_minor

ONE_DAY = timedelta(days=1)


class SubscriptionSpan(BaseModel):
    """Days of one period during which a subscription had one quantity, and what they owe."""

    model_config = ConfigDict(frozen=True)

    quantity: int
    first_day: date
    last_day: date = Field(description="Inclusive.")
    days: int = Field(description="Days charged.")
    period_days: int
    fee: Decimal = Field(description="What the span is charged.")
    included: Decimal = Field(description="The infrastructure it includes.")

    @property
    def prorated(self) -> bool:
        """Whether the span is charged for fewer days than the whole period."""
        return self.days < self.period_days


def month_bounds(period: str) -> tuple[date, date]:
    """First and last day of a ``YYYY-MM`` period."""
    year, month = (int(p) for p in period.split("-"))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def prorate(amount: Decimal, days: int, period_days: int, currency: str) -> Decimal:
    """``amount x days / period_days``, rounded once, half-up, to the currency's minor units;
    the whole period (``days == period_days``) is ``amount`` itself, unrounded."""
    if days == period_days:
        return amount
    with localcontext() as ctx:
        ctx.prec = 60  # the quotient is exact or far finer than the minor unit it is rounded to
        return round_to_minor(amount * days / period_days, currency)


def subscription_spans(
    subscription: Subscription, plan: Plan, period: str
) -> list[SubscriptionSpan]:
    """What a subscription owes for a period, span by span (module docstring); empty when it
    was not active on any day of the period."""
    first, last = month_bounds(period)
    active_first = max(subscription.start, first)
    active_last = min(subscription.end - ONE_DAY, last) if subscription.end else last
    if active_first > active_last:
        return []
    period_days = (last - first).days + 1
    if plan.proration == Proration.NONE:
        quantity = subscription.quantity_on(active_first)
        return [
            SubscriptionSpan(
                quantity=quantity,
                first_day=first,
                last_day=last,
                days=period_days,
                period_days=period_days,
                fee=plan.fee * quantity,
                included=plan.included_infrastructure * quantity,
            )
        ]
    starts = [active_first]
    starts += [
        c.effective_from
        for c in subscription.quantity_changes
        if active_first < c.effective_from <= active_last
        and subscription.quantity_on(c.effective_from)
        != subscription.quantity_on(c.effective_from - ONE_DAY)
    ]  # a change to the same quantity does not split a span
    ends = [day - ONE_DAY for day in starts[1:]] + [active_last]
    spans = []
    for span_first, span_last in zip(starts, ends, strict=True):
        quantity = subscription.quantity_on(span_first)
        days = (span_last - span_first).days + 1
        spans.append(
            SubscriptionSpan(
                quantity=quantity,
                first_day=span_first,
                last_day=span_last,
                days=days,
                period_days=period_days,
                fee=prorate(plan.fee * quantity, days, period_days, plan.currency),
                included=prorate(
                    plan.included_infrastructure * quantity, days, period_days, plan.currency
                ),
            )
        )
    return spans
