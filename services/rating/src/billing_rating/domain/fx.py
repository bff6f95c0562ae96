"""Currency conversion with dated rates from the catalog: pure, no I/O.

Rule: an amount dated ``day`` converts at the latest rate of its pair dated on or before
``day``. When the catalog holds only the opposite pair (USD->EUR for an EUR->USD conversion),
the rate used is its inverse, 1 / rate, to 28 significant digits. The rate used and its date are
recorded on the charge. Converted amounts are not rounded (see docs/rating.md).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billing_catalog.pricing import FxRate


class FxError(LookupError):
    """No rate converts this pair on this date."""


@dataclass(frozen=True)
class FxQuote:
    """A rate used for one conversion: 1 ``base`` = ``rate`` ``quote``, dated ``as_of``."""

    base: str
    quote: str
    rate: Decimal
    as_of: date
    inverted: bool = False

    def convert(self, amount: Decimal) -> Decimal:
        """``amount`` in base currency -> quote currency, exact to the context's precision."""
        return amount * self.rate

    def inverse(self) -> FxQuote:
        """The rate of the opposite conversion."""
        return FxQuote(self.quote, self.base, Decimal(1) / self.rate, self.as_of, not self.inverted)


class FxTable:
    """Dated rates per currency pair, looked up by date."""

    def __init__(self, rates: Iterable[FxRate] = ()) -> None:
        by_pair: dict[tuple[str, str], list[FxRate]] = defaultdict(list)
        for rate in rates:
            by_pair[rate.base, rate.quote].append(rate)
        self._rates = {
            pair: sorted(found, key=lambda r: r.as_of) for pair, found in by_pair.items()
        }
        self._days = {pair: [r.as_of for r in found] for pair, found in self._rates.items()}

    def _latest(self, base: str, quote: str, day: date) -> FxRate | None:
        days = self._days.get((base, quote))
        if not days:
            return None
        index = bisect_right(days, day)
        return self._rates[base, quote][index - 1] if index else None

    def quote(self, base: str, quote: str, day: date) -> FxQuote:
        """The rate converting ``base`` to ``quote`` on ``day`` (see the module's rule)."""
        direct = self._latest(base, quote, day)
        reverse = self._latest(quote, base, day)
        if direct is not None and (reverse is None or direct.as_of >= reverse.as_of):
            return FxQuote(base, quote, direct.rate, direct.as_of)
        if reverse is not None:
            return FxQuote(quote, base, reverse.rate, reverse.as_of).inverse()
        msg = f"no FX rate {base}->{quote} (or {quote}->{base}) dated on or before {day}"
        raise FxError(msg)
