"""Taxes on an invoice: pure rules, no I/O.

Which tax applies is decided by the seller's and the buyer's countries and the buyer's VAT id
(EU VAT rules for business-to-business supplies of services; cloud services are electronically
supplied services); the rates themselves are data (the catalog's ``tax_rates``):

* seller and buyer in the same country: that country's rate;
* both in the EU, in different member states, buyer with a VAT id: **reverse charge**, 0 %, and
  the legal mention (Article 196 of Council Directive 2006/112/EC);
* both in the EU, in different member states, buyer without a VAT id (a consumer): the buyer's
  country's rate (place of supply of electronic services to consumers, Article 58; declared
  through the One-Stop Shop);
* any other pair (a buyer outside the EU, or a seller outside the EU selling abroad): no VAT,
  with the mention that the supply is outside the scope of the seller's VAT.

The rate in effect is the latest of the country whose ``effective_from`` is on or before the
tax point, the last day of the billing period (a continuous supply is taxed when its period
ends).

Amounts: tax is computed per rate on the **unrounded** sum of the lines taxed at that rate and
rounded once, half-up, to the currency's minor units (docs/money.md); a rounded line never feeds
the tax.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from billing_catalog.models import TaxRate
from billing_schemas.money import round_to_minor

EU_MEMBER_STATES = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip
"""The 27 member states (ISO 3166-1 codes; Greece's VAT ids start with EL, its country is GR)."""

REVERSE_CHARGE_MENTION = (
    "Reverse charge: VAT to be accounted for by the recipient "
    "(Article 196, Council Directive 2006/112/EC)."
)
OUTSIDE_SCOPE_MENTION = (
    "Not subject to VAT in the seller's country: the place of supply is the recipient's "
    "country (Article 44, Council Directive 2006/112/EC)."
)

EXEMPT_MENTION = (
    "One-off charges marked VAT exempt: exempt supply, no VAT charged "
    "(Article 135, Council Directive 2006/112/EC)."
)
HUNDRED = Decimal(100)


class TaxTreatment(StrEnum):
    """How an invoice is taxed."""

    DOMESTIC = "domestic"  # seller's country rate
    DISTANCE = "distance"  # EU consumer in another member state: buyer's country rate
    REVERSE_CHARGE = "reverse_charge"
    OUTSIDE_SCOPE = "outside_scope"
    EXEMPT = "exempt"  # a line the operator marked VAT exempt (a one-off charge)


class TaxError(LookupError):
    """The catalog has no rate for a country an invoice must be taxed in."""


@dataclass(frozen=True)
class TaxRegime:
    """The tax an invoice gets: the treatment, the rate (percent) and what must be printed."""

    treatment: TaxTreatment
    country: str | None
    percent: Decimal
    name: str
    mention: str | None

    @property
    def label(self) -> str:
        """``VAT 19% (DE)``, ``VAT 0% (reverse charge)``."""
        pct = f"{self.percent.normalize():f}%"
        if self.treatment is TaxTreatment.REVERSE_CHARGE:
            return f"{self.name} {pct} (reverse charge)"
        if self.treatment is TaxTreatment.OUTSIDE_SCOPE:
            return f"{self.name} {pct} (not subject)"
        if self.treatment is TaxTreatment.EXEMPT:
            return f"{self.name} {pct} (exempt)"
        return f"{self.name} {pct} ({self.country})"


class TaxAmount(BaseModel):
    """The tax of one rate: its exact base, the base rounded, and the tax rounded once."""

    model_config = ConfigDict(frozen=True)

    label: str
    percent: Decimal
    base_exact: Decimal
    base: Decimal
    tax_exact: Decimal
    tax: Decimal


def rate_in_effect(rates: Iterable[TaxRate], country: str, on: date) -> TaxRate:
    """The country's latest rate whose ``effective_from`` is on or before ``on``."""
    candidates = [r for r in rates if r.country == country and r.effective_from <= on]
    if not candidates:
        msg = f"no tax rate for {country} in effect on {on.isoformat()}: add it to tax_rates"
        raise TaxError(msg)
    return max(candidates, key=lambda r: r.effective_from)


def tax_regime(
    *,
    seller_country: str,
    buyer_country: str,
    buyer_vat_id: str | None,
    rates: Sequence[TaxRate],
    tax_point: date,
) -> TaxRegime:
    """The tax an invoice from ``seller_country`` to ``buyer_country`` gets (module docstring)."""
    if seller_country == buyer_country:
        rate = rate_in_effect(rates, seller_country, tax_point)
        return TaxRegime(TaxTreatment.DOMESTIC, seller_country, rate.percent, rate.name, None)
    both_eu = seller_country in EU_MEMBER_STATES and buyer_country in EU_MEMBER_STATES
    if both_eu and buyer_vat_id:
        return TaxRegime(
            TaxTreatment.REVERSE_CHARGE, None, Decimal(0), "VAT", REVERSE_CHARGE_MENTION
        )
    if both_eu:
        rate = rate_in_effect(rates, buyer_country, tax_point)
        return TaxRegime(TaxTreatment.DISTANCE, buyer_country, rate.percent, rate.name, None)
    return TaxRegime(TaxTreatment.OUTSIDE_SCOPE, None, Decimal(0), "VAT", OUTSIDE_SCOPE_MENTION)


EXEMPT_REGIME = TaxRegime(TaxTreatment.EXEMPT, None, Decimal(0), "VAT", EXEMPT_MENTION)
"""The regime of a line the operator marked VAT exempt."""


def compute_taxes(bases: Iterable[tuple[TaxRegime, Decimal]], currency: str) -> list[TaxAmount]:
    """Tax per rate: the exact amounts taxed at one rate are summed, then taxed and rounded once.

    ``bases`` pairs each line's regime with its exact (unrounded) amount. The result has one
    entry per distinct label, in the order first seen.
    """
    sums: dict[str, tuple[TaxRegime, Decimal]] = {}
    for regime, amount in bases:
        _, total = sums.get(regime.label, (regime, Decimal(0)))
        sums[regime.label] = (regime, total + amount)
    result = []
    for label, (regime, base) in sums.items():
        exact = base * regime.percent / HUNDRED
        result.append(
            TaxAmount(
                label=label,
                percent=regime.percent,
                base_exact=base,
                base=round_to_minor(base, currency),
                tax_exact=exact,
                tax=round_to_minor(exact, currency),
            )
        )
    return result
