"""In-memory fakes of rating's ports (``billing_rating.ports``), for fast tests of the use
cases; ``tests/test_rating_ports_contract.py`` holds them to what the MongoDB adapters do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from billing_catalog.pricing import FxRate
from billing_rating.adapters.rated_store import Corrections, _current
from billing_rating.domain.fx import FxTable
from billing_rating.domain.rating import CustomerPricing
from billing_rating.domain.rerating import Emitted, savings_of
from billing_rating.domain.tiers import Claim, TierState
from billing_rating.ports import ClaimConflictError, RatedRecord, Unpriced
from billing_schemas.events import ChargeRated, RatedCharge, UsageRecord


class InMemoryPricingCatalog:
    """Fake of the port for unit tests."""

    def __init__(
        self, pricing: dict[str, CustomerPricing | Unpriced], rates: Iterable[FxRate] = ()
    ) -> None:
        self.pricing = pricing
        self.rates = list(rates)
        self.current_revision: str | None = None

    async def pricing_for(
        self, account_keys: Iterable[str] | None
    ) -> dict[str, CustomerPricing | Unpriced]:
        """See :class:`PricingCatalog`."""
        if account_keys is None:
            return dict(self.pricing)
        return {k: self.pricing[k] for k in account_keys if k in self.pricing}

    async def revision(self) -> str | None:
        """``current_revision`` (None, unless a test sets it: a cache then reads the fake again
        every TTL)."""
        return self.current_revision

    async def fx_rates(self, pairs: Iterable[tuple[str, str]]) -> FxTable:
        """See :class:`PricingCatalog`."""
        wanted = {p for pair in pairs for p in (pair, pair[::-1])}
        return FxTable(r for r in self.rates if (r.base, r.quote) in wanted)


class InMemoryTierStore:
    """Fake of the port for unit tests, with the same conflict rules."""

    def __init__(self) -> None:
        self.claims: dict[tuple[str, str], Claim] = {}

    async def load(self, wanted: Iterable[tuple[str, str]], *, records: bool = True) -> TierState:
        """See :class:`TierStore`."""
        wanted = list(wanted)
        keys = {key for key, _ in wanted}
        state = TierState()
        for claim in self.claims.values():
            if claim.key in keys:
                state.heads.setdefault(claim.key, claim)
                if claim.seq > state.heads[claim.key].seq:
                    state.heads[claim.key] = claim
        if records:
            for pair in wanted:
                if (found := self.claims.get(pair)) is not None:
                    state.apply(found)
        return state

    async def save(self, claims: list[Claim]) -> None:
        """See :class:`TierStore`."""
        taken = {(c.key, c.seq) for c in self.claims.values()}
        for claim in sorted(claims, key=lambda c: (c.key, c.seq)):
            if (claim.key, claim.seq) in taken:
                msg = f"place {claim.seq} of {claim.key} is taken"
                raise ClaimConflictError(msg, record_claimed=False)
            if (claim.key, claim.record_id) in self.claims:
                msg = f"record {claim.record_id} has a claim in {claim.key} already"
                raise ClaimConflictError(msg, record_claimed=True)
            self.claims[claim.key, claim.record_id] = claim
            taken.add((claim.key, claim.seq))


class InMemoryRatedStore:
    """Fake of the port for unit tests, with the same keep-once rule."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[tuple[int, int], RatedRecord]] = {}
        self.corrections: dict[str, RatedCharge] = {}
        self._batches = 0

    async def save_rated(self, rated: Sequence[tuple[UsageRecord, RatedCharge]]) -> None:
        """See :class:`RatedStore`."""
        self._batches += 1
        for i, (record, charge) in enumerate(rated):
            emitted = Emitted(charge.price, 1, savings_of(charge))
            self.records.setdefault(
                record.record_id,
                ((self._batches, i), RatedRecord(record, charge.customer_id, emitted)),
            )

    async def save_corrections(self, charges: Sequence[RatedCharge]) -> None:
        """See :class:`RatedStore`."""
        for charge in charges:
            self.corrections.setdefault(charge.charge_id, charge)

    async def period(self, period: str, customer_id: str | None = None) -> list[RatedRecord]:
        """See :class:`RatedStore`."""
        corrections: Corrections = {}
        for c in self.corrections.values():
            if c.billing_period == period and customer_id in (None, c.customer_id):
                corrections.setdefault(c.record_id, []).append((c.price, savings_of(c)))
        records = [
            (order, rated)
            for order, rated in self.records.values()
            if rated.record.billing_period == period and customer_id in (None, rated.customer_id)
        ]
        return _current(records, corrections)

    async def charged(
        self, period: str, customer_id: str, record_ids: Iterable[str]
    ) -> dict[str, Emitted]:
        """See :class:`RatedStore`."""
        wanted = set(record_ids)
        return {
            r.record.record_id: r.emitted
            for r in await self.period(period, customer_id)
            if r.record.record_id in wanted
        }


class InMemoryChargePublisher:
    """Fake of the port for unit tests: keeps what was published, in order."""

    def __init__(self) -> None:
        self.published: list[ChargeRated] = []

    async def publish(self, charges: Sequence[ChargeRated]) -> None:
        """See :class:`ChargePublisher`."""
        self.published += charges
