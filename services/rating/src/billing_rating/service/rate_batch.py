"""Use case: rate a batch of recorded usage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from billing_catalog.models import account_key
from billing_rating.domain.fx import FxTable
from billing_rating.domain.rating import (
    Choices,
    CustomerPricing,
    Plan,
    RatingError,
    plan_usage,
    rate_usage,
    reversed_record,
)
from billing_rating.domain.rerating import Emitted
from billing_rating.domain.tiers import Claim, TierState
from billing_rating.ports import ClaimConflictError, PricingCatalog, RatedStore, TierStore, Unpriced
from billing_schemas.events import ChargeRated, RatedCharge, UsageRecorded
from billing_schemas.trusted import trusted

SOURCE = "billing-rating"
ATTEMPTS = 5
"""How many times a batch is rated again when another consumer took a tier place first."""

log = logging.getLogger("billing.rating")


@dataclass
class RatedBatch:
    """The charges to publish, keyed by customer, and the inputs that could not be rated."""

    charges: list[tuple[str, ChargeRated]] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)  # (index in batch, reason)


Priced = tuple[int, UsageRecorded, CustomerPricing, Plan | None]
"""A record to rate: its index in the batch, the event, its pricing and its plan (``None`` if
planning failed: ``rate_usage`` then says why)."""


def _plan(event: UsageRecorded, pricing: CustomerPricing, choices: Choices) -> Plan | None:
    try:
        return plan_usage(event.data, pricing, choices)
    except RatingError:
        return None


@dataclass
class _Rated:
    """What rating a batch in order gives (before its claims are stored)."""

    rated: list[tuple[int, UsageRecorded, RatedCharge]] = field(default_factory=list)
    repricings: list[tuple[UsageRecorded, RatedCharge]] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    new_claims: list[Claim] = field(default_factory=list)


def _rate_in_order(
    priced: list[Priced], fx: FxTable, state: TierState, originals: dict[str, Emitted]
) -> _Rated:
    """Rate each record against the state, threading new claims through it (pure).

    ``originals``: what was charged for the records the batch's reversals take back, as kept;
    a record rated earlier in the batch counts too.
    """
    out = _Rated()
    charged = dict(originals)
    for index, event, pricing, plan in priced:
        reverses = reversed_record(event.data)
        original = None if reverses is None else charged.get(reverses)
        try:
            result = rate_usage(event.data, pricing, fx, state, plan, original=original)
        except RatingError as exc:
            out.failures.append((index, str(exc)))
            continue
        claim = result.claim
        if claim is not None and (claim.key, claim.record_id) not in state.claims:
            state.apply(claim)
            out.new_claims.append(claim)
        out.rated.append((index, event, result.charge))
        charged.setdefault(event.data.record_id, Emitted(result.charge.price, 1))
        if result.repricing is not None:
            out.repricings.append((event, result.repricing))
    return out


async def _originals(priced: list[Priced], kept: RatedStore) -> dict[str, Emitted]:
    """What was charged so far for the records the batch's reversals take back."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for _, event, pricing, _ in priced:
        if (reverses := reversed_record(event.data)) is not None:
            scope = (event.data.billing_period, pricing.customer_id)
            wanted.setdefault(scope, set()).add(reverses)
    found: dict[str, Emitted] = {}
    for (period, customer_id), ids in sorted(wanted.items()):
        found |= await kept.charged(period, customer_id, ids)
    return found


Publish = Callable[[list[tuple[str, ChargeRated]]], Awaitable[None]]
"""Publishes ``(customer id, charge)`` pairs; returns once the broker has them."""


async def rate_batch(
    events: list[UsageRecorded],
    catalog: PricingCatalog,
    tiers: TierStore,
    kept: RatedStore,
    publish: Publish | None = None,
) -> RatedBatch:
    """Rate every event; the charge id (and event id) is the usage record id.

    Period-cumulative rules read and extend the claims in ``tiers``: the claims a batch makes
    are stored before its charges are returned for publishing, so a redelivered record finds its
    claim and is charged the same (and invoicing stores each charge once anyway). Each rated
    record is then kept in ``kept`` with its charge, for re-rating the period later, while the
    charges are published with ``publish`` if given: both are done when this returns, and a
    batch that fails in either is redelivered and does both again (the keeping is idempotent;
    invoicing stores each charge id once).
    """
    result = RatedBatch()
    keys = {account_key(e.data.provider, e.data.sub_account_id) for e in events}
    priced = _price_owners(events, await catalog.pricing_for(keys), result.failures)
    pairs = {
        (e.data.currency, p.currency) for _, e, p, _ in priced if e.data.currency != p.currency
    }
    fx = await catalog.fx_rates(pairs)
    originals = await _originals(priced, kept)
    done = await _rate_claiming(priced, fx, originals, tiers)
    result.failures += done.failures
    result.failures.sort()
    done.rated.sort(key=lambda r: r[0])
    result.charges = _charge_events(done)
    keeping = _keep(kept, done)
    if publish is None:
        await keeping
    else:
        await asyncio.gather(keeping, publish(result.charges))
    return result


def _price_owners(
    events: list[UsageRecorded],
    pricing: dict[str, CustomerPricing | Unpriced],
    failures: list[tuple[int, str]],
) -> list[Priced]:
    """Each event with its owner's pricing and its plan (the batch's choices made once); an
    event no customer owns, or whose price list cannot be used, goes to ``failures``."""
    priced: list[Priced] = []
    choices = Choices()
    for index, event in enumerate(events):
        key = account_key(event.data.provider, event.data.sub_account_id)
        owner = pricing.get(key)
        if owner is None:
            reason = f"no customer owns account {key!r}: add it to the catalog, then replay"
            failures.append((index, reason))
        elif isinstance(owner, Unpriced):
            failures.append((index, f"{owner.reason}: fix the catalog, then replay"))
        else:
            priced.append((index, event, owner, _plan(event, owner, choices)))
    return priced


async def _rate_claiming(
    priced: list[Priced], fx: FxTable, originals: dict[str, Emitted], tiers: TierStore
) -> _Rated:
    """Rate the batch against the stored running totals and store the claims it makes; when
    another consumer took a place first, load the totals and rate the batch again."""
    wanted = [
        (plan.state_key, event.data.record_id)
        for _, event, _, plan in priced
        if plan is not None and plan.state_key is not None
    ]
    reversed_places = [
        (plan.state_key, reverses)
        for _, event, _, plan in priced
        if plan is not None
        and plan.state_key is not None
        and (reverses := reversed_record(event.data)) is not None
    ]
    # records are taken as new until the store says one has a claim (a redelivery): looking
    # their claims up costs a scan on FerretDB, and the insert finds out anyway; a reversal
    # needs its original's claim, so a batch holding one looks claims up from the start
    records = bool(reversed_places)
    for attempt in range(1, ATTEMPTS + 1):
        state = await tiers.load(wanted + reversed_places, records=records)
        done = _rate_in_order(priced, fx, state, originals)
        try:
            await tiers.save(done.new_claims)
            break
        except ClaimConflictError as exc:
            if attempt == ATTEMPTS:
                raise
            records = records or exc.record_claimed
            log.info("tier claim refused (%s); rating the batch again", exc)
    return done


def _charge_events(done: _Rated) -> list[tuple[str, ChargeRated]]:
    """The batch's charges as events keyed by customer: the rated records in batch order,
    then the reversals' re-pricings."""
    occurred_at = datetime.now(UTC)
    charges = [(event, charge) for _, event, charge in done.rated] + done.repricings
    # built without validating again: the charge and the ids are typed already
    return [
        (
            charge.customer_id,
            trusted(
                ChargeRated,
                event_id=f"charge-rated:{charge.charge_id}",
                occurred_at=occurred_at,
                source=SOURCE,
                correlation_id=event.correlation_id,
                data=charge,
            ),
        )
        for event, charge in charges
    ]


async def _keep(kept: RatedStore, done: _Rated) -> None:
    """Keep the rated records, then the reversals' re-pricings (corrections of the reversal:
    a re-rating of the period counts them as charged for it)."""
    await kept.save_rated([(event.data, charge) for _, event, charge in done.rated])
    await kept.save_corrections([charge for _, charge in done.repricings])
