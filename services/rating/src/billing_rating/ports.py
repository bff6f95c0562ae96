"""Rating's ports: what its use cases need from the catalog, the tier and rated stores and the
charge stream, each with a real adapter (``adapters/``) and an in-memory fake
(``adapters/memory.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from billing_rating.domain.fx import FxTable
from billing_rating.domain.rating import CustomerPricing
from billing_rating.domain.rerating import Emitted
from billing_rating.domain.tiers import Claim, TierState
from billing_schemas.events import ChargeRated, RatedCharge, UsageRecord


@dataclass(frozen=True)
class Unpriced:
    """An account the catalog knows but cannot price, and why."""

    reason: str


class PricingCatalog(Protocol):
    """Port: who owns these accounts, how each is priced, and the FX rates to convert."""

    async def pricing_for(
        self, account_keys: Iterable[str] | None
    ) -> dict[str, CustomerPricing | Unpriced]:
        """Map each known account key to its pricing (or why it has none); unknown keys are
        absent. ``None``: every account of the catalog."""
        ...

    async def revision(self) -> str | None:
        """A value that changes whenever the catalog is applied (None: not known)."""
        ...

    async def fx_rates(self, pairs: Iterable[tuple[str, str]]) -> FxTable:
        """Every catalog rate of the given currency pairs, either way round."""
        ...


class ClaimConflictError(RuntimeError):
    """Another writer took a place in a running total first, or a record rated as new already
    had a claim: rate the batch again (with ``records=True`` if ``record_claimed``)."""

    def __init__(self, message: str, *, record_claimed: bool) -> None:
        super().__init__(message)
        self.record_claimed = record_claimed


class TierStore(Protocol):
    """Port: load the state a batch needs; store the claims it made."""

    async def load(self, wanted: Iterable[tuple[str, str]], *, records: bool = True) -> TierState:
        """The latest claim of each key of ``wanted`` (the store may answer from the last one it
        saw: a stale head makes :meth:`save` fail) and, if ``records``, the existing claims of
        these (key, record id)."""
        ...

    async def save(self, claims: list[Claim]) -> None:
        """Store new claims; :class:`ClaimConflictError` if a place was taken meanwhile or a
        record already had a claim."""
        ...


@dataclass(frozen=True)
class RatedRecord:
    """A usage record as rating charged it: for whom, and what has been charged so far."""

    record: UsageRecord
    customer_id: str
    emitted: Emitted


class RatedStore(Protocol):
    """Port: keep rated records and corrections; read a period back in rating order."""

    async def save_rated(self, rated: Sequence[tuple[UsageRecord, RatedCharge]]) -> None:
        """Keep each record with the charge emitted for it (a record kept already is left)."""
        ...

    async def save_corrections(self, charges: Sequence[RatedCharge]) -> None:
        """Keep correction charges once published (one kept already is left)."""
        ...

    async def period(self, period: str, customer_id: str | None = None) -> list[RatedRecord]:
        """The period's rated records (of one customer, if given), in the order first rated."""
        ...

    async def charged(
        self, period: str, customer_id: str, record_ids: Iterable[str]
    ) -> dict[str, Emitted]:
        """What has been charged so far for each of these records of the customer's period
        (a record never rated for it is absent)."""
        ...


class ChargePublisher(Protocol):
    """Port: publish charges; return once the broker has them."""

    async def publish(self, charges: Sequence[ChargeRated]) -> None:
        """Publish each charge, keyed by its customer."""
        ...
