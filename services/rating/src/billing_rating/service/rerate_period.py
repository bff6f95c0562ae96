"""Use case: re-rate a billing period with the price lists in effect now; emit the differences.

The period's records are read back from the rated store in the order they were first rated and
rated afresh (a fresh running total for period-cumulative rules, today's catalog and FX rates).
``domain.rerating.corrections_to`` turns the differences into correction charges with
deterministic ids; they are published, then kept, chunk by chunk: a run cut short publishes the
same ids again next time (invoicing stores each id once), and a finished run leaves nothing for
the next one to do. Corrections are ordinary charges: invoicing puts one for a finalized period
onto the customer's next open invoice, never onto the finalized one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from billing_catalog.models import account_key
from billing_rating.domain.fx import FxTable
from billing_rating.domain.rating import CustomerPricing, RatingError, rate_usage, reversed_record
from billing_rating.domain.rerating import Emitted, corrections_to
from billing_rating.domain.tiers import TierState
from billing_rating.ports import ChargePublisher, PricingCatalog, RatedRecord, RatedStore, Unpriced
from billing_schemas.events import ChargeRated, RatedCharge, UsageRecord

SOURCE = "billing-rating"
PROGRESS_EVERY = 10_000
PUBLISH_CHUNK = 5_000

log = logging.getLogger("billing.rating")

Progress = Callable[[str, int, int], None]
"""``(step, done, total)``: called every ``PROGRESS_EVERY`` records and at the end of a step."""


@dataclass
class RerateSummary:
    """What a re-rating found (and published, unless it was a dry run)."""

    period: str
    customer_id: str | None
    records: int = 0
    corrections: list[RatedCharge] = field(default_factory=list)
    differences: dict[str, Decimal] = field(default_factory=dict)
    """Total price difference per invoicing currency."""
    skipped: list[str] = field(default_factory=list)
    """Records not re-rated, each with the reason."""
    published: bool = False


def _no_progress(step: str, done: int, total: int) -> None:
    del step, done, total


def _rate_afresh(
    record: UsageRecord,
    owner: CustomerPricing,
    fx: FxTable,
    state: TierState,
    charged: dict[str, Emitted],
) -> RatedCharge:
    """The record's fresh charge, threading ``state`` and ``charged`` (each record's fresh
    price, for the reversals after it). A reversal's charge includes the re-pricing of its
    running total, which was kept as its correction: what is compared is all that is charged
    for it."""
    reverses = reversed_record(record)
    original = None if reverses is None else charged.get(reverses)
    result = rate_usage(record, owner, fx, state, original=original)
    if result.claim is not None:
        state.apply(result.claim)
    charge = result.charge
    charged[record.record_id] = Emitted(charge.price, 1)
    if (extra := result.repricing) is not None:
        update = {"price": charge.price + extra.price, "margin": charge.margin + extra.margin}
        charge = charge.model_copy(update=update)
    return charge


async def rerate_period(
    period: str,
    *,
    customer_id: str | None,
    catalog: PricingCatalog,
    kept: RatedStore,
    publisher: ChargePublisher | None,
    correlation_id: str,
    on_progress: Progress = _no_progress,
) -> RerateSummary:
    """Re-rate ``period`` (of one customer, if given) and publish its corrections.

    ``publisher=None`` is a dry run: the corrections are computed and returned, nothing is
    published or kept. A record whose account is no longer priced, now belongs to another
    customer, or cannot be rated any more is skipped and named in the summary; the rest are
    re-rated.
    """
    summary = RerateSummary(period, customer_id)
    records = await kept.period(period, customer_id)
    keys = {account_key(r.record.provider, r.record.sub_account_id) for r in records}
    pricing = await catalog.pricing_for(keys)
    priced = [p for p in pricing.values() if not isinstance(p, Unpriced)]
    by_customer = {p.customer_id: p.currency for p in priced}
    pairs = {
        (r.record.currency, by_customer[r.customer_id])
        for r in records
        if r.customer_id in by_customer and r.record.currency != by_customer[r.customer_id]
    }
    fx = await catalog.fx_rates(pairs)
    current, fresh = _rate_period(records, pricing, fx, summary.skipped, on_progress)
    summary.records = len(fresh)
    summary.corrections = corrections_to(current, fresh)
    for charge in summary.corrections:
        summary.differences[charge.currency] = (
            summary.differences.get(charge.currency, Decimal(0)) + charge.price
        )
    if publisher is None:
        return summary
    await _publish_corrections(summary.corrections, publisher, kept, correlation_id, on_progress)
    summary.published = True
    log.info(
        "re-rated %s: %d records, %d corrections published",
        period,
        summary.records,
        len(summary.corrections),
    )
    return summary


def _owner(
    rated: RatedRecord, pricing: dict[str, CustomerPricing | Unpriced]
) -> CustomerPricing | str:
    """The pricing a kept record is re-rated with, or why it is skipped (its account is no
    longer priced, or now belongs to another customer than its charges went to)."""
    record = rated.record
    key = account_key(record.provider, record.sub_account_id)
    owner = pricing.get(key)
    if owner is None:
        return f"record {record.record_id}: account {key!r} is no longer in the catalog"
    if isinstance(owner, Unpriced):
        return f"record {record.record_id}: account {key!r} cannot be priced: {owner.reason}"
    if owner.customer_id != rated.customer_id:
        return (
            f"record {record.record_id}: account {key!r} now belongs to "
            f"{owner.customer_id!r}, its charges went to {rated.customer_id!r}"
        )
    return owner


def _rate_period(
    records: list[RatedRecord],
    pricing: dict[str, CustomerPricing | Unpriced],
    fx: FxTable,
    skipped: list[str],
    on_progress: Progress,
) -> tuple[dict[str, Emitted], list[RatedCharge]]:
    """Rate the period's records afresh in their first rating order, with a fresh running
    total: what each was charged so far, and its fresh charge (a record that cannot be
    re-rated goes to ``skipped`` with the reason)."""
    state = TierState()
    charged: dict[str, Emitted] = {}  # each record's fresh price, for the reversals after it
    fresh: list[RatedCharge] = []
    current: dict[str, Emitted] = {}
    for done, rated in enumerate(records, 1):
        owner = _owner(rated, pricing)
        if isinstance(owner, str):
            skipped.append(owner)
        else:
            try:
                charge = _rate_afresh(rated.record, owner, fx, state, charged)
            except RatingError as exc:
                skipped.append(str(exc))
            else:
                fresh.append(charge)
                current[rated.record.record_id] = rated.emitted
        if done % PROGRESS_EVERY == 0:
            on_progress("re-rated", done, len(records))
    on_progress("re-rated", len(records), len(records))
    return current, fresh


async def _publish_corrections(
    corrections: list[RatedCharge],
    publisher: ChargePublisher,
    kept: RatedStore,
    correlation_id: str,
    on_progress: Progress,
) -> None:
    """Publish the corrections, then keep them, chunk by chunk."""
    total = len(corrections)
    for start in range(0, total, PUBLISH_CHUNK):
        chunk = corrections[start : start + PUBLISH_CHUNK]
        await publisher.publish(
            [
                ChargeRated.create(
                    c,
                    source=SOURCE,
                    correlation_id=correlation_id,
                    event_id=f"charge-rated:{c.charge_id}",
                )
                for c in chunk
            ]
        )
        # kept only once on the broker: a crash in between publishes the same ids again
        await kept.save_corrections(chunk)
        on_progress("published", start + len(chunk), total)
