"""Price lists, rebilling policy and FX rates: the pricing part of the catalog.

Documents only (validated on load); the rules are applied by the rating engine
(``billing_rating.domain``). The semantics are written down in docs/rating.md. These models live
in the catalog package, not in rating, because invoicing needs them as much: ``billing catalog
apply`` validates a price list (overlapping rules, version order) before storing it, refuses a
change to a version in effect (:func:`immutable_version_changes`) and writes the audit trail's
before/after of price lists; rating reads them. Pricing a record stays in rating's domain.

* A price list has versions; each version has an ``effective_from`` date (inclusive) and an
  optional ``effective_to`` (exclusive). A version applies from its date until the next version's
  date (or its own ``effective_to``, whichever comes first). Once effective, a version is
  immutable: change prices by adding a version (:func:`immutable_version_changes`).
* Rules are scoped global -> provider -> service -> SKU, optionally filtered by region and by
  usage type (a glob over the record's usage type). The most specific matching rule wins; two
  rules that could match the same record with the same specificity are refused when the price
  list is loaded.
* Amounts in a price list (unit prices, deltas, package prices, minimums, spend thresholds) are
  in the price list's ``currency``, which must then be the invoicing currency of every customer
  using it; percentages need no currency.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing_schemas.money import CurrencyCode, WireDecimal

ALWAYS = date(1970, 1, 1)
"""``effective_from`` of a price list written in the one-line legacy form."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- rules ---------------------------------------------------------------------------------

SCOPE_FIELDS = ("provider", "service", "sku")
FILTER_FIELDS = ("region", "usage_type")


_DERIVED = ("specificity", "rule_id", "scope_label")
"""The cached properties of a rule."""


class _Rule(_Model):
    """What every rule has: an optional id, its scope and its filters."""

    id: str | None = Field(
        default=None,
        description="Stable name of the rule (tier state is kept per rule id); derived if absent.",
    )
    provider: str | None = None
    service: str | None = None
    sku: str | None = None
    region: str | None = None
    usage_type: str | None = Field(
        default=None, description="Glob over the record's usage type (AWS lineItem/UsageType)."
    )

    @property
    def level(self) -> int:
        """0 global, 1 provider, 2 service, 3 SKU: the most specific scope field set."""
        if self.sku is not None:
            return 3
        if self.service is not None:
            return 2
        return 1 if self.provider is not None else 0

    # a rule is read for every record it prices: what is derived from its fields is derived
    # once (model_copy below forgets it, so a copy with other fields derives it again)
    @cached_property
    def specificity(self) -> tuple[int, int]:
        """Higher wins: (level, number of other scope fields and filters set)."""
        fields = (*SCOPE_FIELDS, *FILTER_FIELDS)
        return (self.level, sum(getattr(self, f) is not None for f in fields))

    @cached_property
    def rule_id(self) -> str:
        """The explicit id, or ``kind@provider/service/sku[region][usage_type]``."""
        if self.id is not None:
            return self.id
        kind = getattr(self, "kind", "rule")
        scope = "/".join(getattr(self, f) or "*" for f in SCOPE_FIELDS)
        filters = "".join(f"[{f}={getattr(self, f)}]" for f in FILTER_FIELDS if getattr(self, f))
        return f"{kind}@{scope}{filters}"

    def scope_text(self) -> str:
        """Where the rule applies, for people: ``global`` or ``AWS / Amazon EC2 (us-east-1)``."""
        return self.scope_label

    @cached_property
    def scope_label(self) -> str:
        """:meth:`scope_text`, derived once."""
        parts = [v for f in SCOPE_FIELDS if (v := getattr(self, f)) is not None]
        filters = [f"{f} {v}" for f in FILTER_FIELDS if (v := getattr(self, f)) is not None]
        text = " / ".join(parts) or "global"
        return f"{text} ({', '.join(filters)})" if filters else text

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy that derives its cached values again from its own fields."""
        copy = super().model_copy(update=update, deep=deep)
        for name in _DERIVED:
            copy.__dict__.pop(name, None)
        return copy

    def overlaps(self, other: _Rule) -> bool:
        """True when some record could match both rules (no field set in both differs)."""
        for name in (*SCOPE_FIELDS, *FILTER_FIELDS):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is None or theirs is None:
                continue
            # two different usage-type globs are taken as disjoint here; a record that matches
            # both anyway is refused when rated, naming both rules
            if mine != theirs:
                return False
        return True

    @property
    def amounts_in_currency(self) -> bool:
        """Whether the rule carries absolute amounts (so the price list needs a currency)."""
        return True


class MarkupRule(_Rule):
    """price = basis x (1 + percent / 100)."""

    kind: Literal["markup"] = "markup"
    percent: WireDecimal = Field(ge=Decimal(-100))

    @property
    def amounts_in_currency(self) -> bool:
        """Percentages only."""
        return False


class DiscountRule(_Rule):
    """price = basis x (1 - percent / 100)."""

    kind: Literal["discount"] = "discount"
    percent: WireDecimal = Field(ge=Decimal(0), le=Decimal(100))

    @property
    def amounts_in_currency(self) -> bool:
        """Percentages only."""
        return False


class UnitDeltaRule(_Rule):
    """price = basis + quantity x delta (a per-unit surcharge, or a reduction if negative)."""

    kind: Literal["unit_delta"] = "unit_delta"
    delta: WireDecimal


class UnitPriceRule(_Rule):
    """price = quantity x unit_price, whatever the provider charged."""

    kind: Literal["unit_price"] = "unit_price"
    unit_price: WireDecimal = Field(ge=Decimal(0))


class TierMode(StrEnum):
    """Graduated: each unit at the price of the tier it falls in. Volume: every unit of the
    period at the price of the tier the period's total falls in."""

    GRADUATED = "graduated"
    VOLUME = "volume"


class TierMeasure(StrEnum):
    """What the tiers count within the billing period: usage quantity or spend (the basis
    amount in the invoicing currency)."""

    QUANTITY = "quantity"
    SPEND = "spend"


class Tier(_Model):
    """One tier: up to ``up_to`` (exclusive of what lies above; ``None`` = no upper bound).

    Quantity tiers carry a ``unit_price``; spend tiers a ``percent`` markup on the spend that
    falls in the tier (negative for a discount).
    """

    up_to: WireDecimal | None = Field(default=None, gt=Decimal(0))
    unit_price: WireDecimal | None = Field(default=None, ge=Decimal(0))
    percent: WireDecimal | None = Field(default=None, ge=Decimal(-100))


class TieredRule(_Rule):
    """Tiered pricing within the billing period (see :class:`TierMode`, :class:`TierMeasure`)."""

    kind: Literal["tiered"] = "tiered"
    mode: TierMode
    measure: TierMeasure = TierMeasure.QUANTITY
    tiers: list[Tier] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_tiers(self) -> TieredRule:
        bounds = [t.up_to for t in self.tiers]
        if bounds[-1] is not None:
            msg = "the last tier must have no up_to (it covers everything above)"
            raise ValueError(msg)
        inner = [b for b in bounds[:-1] if b is not None]
        if len(inner) != len(bounds) - 1 or inner != sorted(set(inner)):
            msg = "tiers need increasing up_to bounds; only the last tier has none"
            raise ValueError(msg)
        field = "unit_price" if self.measure is TierMeasure.QUANTITY else "percent"
        other = "percent" if field == "unit_price" else "unit_price"
        for n, tier in enumerate(self.tiers, 1):
            if getattr(tier, field) is None or getattr(tier, other) is not None:
                msg = f"tier {n}: {self.measure.value} tiers take a {field} (and no {other})"
                raise ValueError(msg)
        return self

    @property
    def amounts_in_currency(self) -> bool:
        """Quantity tiers carry unit prices; spend tiers carry thresholds in the currency."""
        return True


class PackageRule(_Rule):
    """price per started block of ``size`` units, counted over the billing period."""

    kind: Literal["package"] = "package"
    size: WireDecimal = Field(gt=Decimal(0))
    price: WireDecimal = Field(ge=Decimal(0))


class MinimumRule(_Rule):
    """At least ``amount`` per billing period for what the rule covers; above it, the basis
    marked up by ``percent``."""

    kind: Literal["minimum"] = "minimum"
    amount: WireDecimal = Field(ge=Decimal(0))
    percent: WireDecimal = Field(default=Decimal(0), ge=Decimal(-100))


Rule = Annotated[
    MarkupRule
    | DiscountRule
    | UnitDeltaRule
    | UnitPriceRule
    | TieredRule
    | PackageRule
    | MinimumRule,
    Field(discriminator="kind"),
]

PERCENT_RULES = (MarkupRule, DiscountRule)
"""Rules that only scale an amount: the ones applied to credits, refunds and other non-usage
lines whose treatment is ``rate``."""


# --- price lists ---------------------------------------------------------------------------


class PriceListVersion(_Model):
    """One version of a price list: its dates and its rules."""

    version: int = Field(ge=1)
    effective_from: date
    effective_to: date | None = Field(default=None, description="Exclusive; None = open.")
    currency: CurrencyCode | None = Field(
        default=None, description="Currency of the amounts in the rules (needed if any)."
    )
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> PriceListVersion:
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            msg = f"version {self.version}: effective_to must be after effective_from"
            raise ValueError(msg)
        seen: dict[str, int] = {}
        for n, rule in enumerate(self.rules, 1):
            if rule.rule_id in seen:
                msg = (
                    f"version {self.version}: rules {seen[rule.rule_id]} and {n} share the id "
                    f"{rule.rule_id!r}"
                )
                raise ValueError(msg)
            seen[rule.rule_id] = n
            if rule.amounts_in_currency and self.currency is None:
                msg = (
                    f"version {self.version}: rule {n} ({rule.kind}) has amounts, "
                    "so the version needs a currency"
                )
                raise ValueError(msg)
        for i, first in enumerate(self.rules):
            for j in range(i + 1, len(self.rules)):
                second = self.rules[j]
                if first.specificity == second.specificity and first.overlaps(second):
                    msg = (
                        f"version {self.version}: rules {i + 1} ({first.rule_id}) and {j + 1} "
                        f"({second.rule_id}) tie: both can match the same record at the same "
                        "specificity; make one more specific or narrow their filters"
                    )
                    raise ValueError(msg)
        return self


class PriceList(_Model):
    """A named price list and its versions, oldest first.

    The one-line legacy form ``{id, version, markup_percent}`` is read as one version,
    effective since 1970-01-01, holding one global markup rule.
    """

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    versions: list[PriceListVersion] = Field(
        default_factory=lambda: [PriceListVersion(version=1, effective_from=ALWAYS)],
        min_length=1,
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and "versions" not in data:
            legacy = dict(data)
            version = legacy.pop("version", 1)
            markup = legacy.pop("markup_percent", "0")
            legacy["versions"] = [
                {
                    "version": version,
                    "effective_from": ALWAYS,
                    "rules": [{"kind": "markup", "percent": markup}],
                }
            ]
            return legacy
        return data

    @model_validator(mode="after")
    def _check_order(self) -> PriceList:
        for before, after in zip(self.versions, self.versions[1:], strict=False):
            if after.version <= before.version or after.effective_from <= before.effective_from:
                msg = (
                    f"price list {self.id!r}: version {after.version} must come after version "
                    f"{before.version} in number and effective_from"
                )
                raise ValueError(msg)
        return self

    def versions_not_in(self, currency: str) -> list[PriceListVersion]:
        """The versions whose amounts are in another currency than ``currency`` (a version
        without a currency has no amounts, so it fits every currency). Every version is
        checked: a later version in another currency would bill its amounts as ``currency``."""
        return [v for v in self.versions if v.currency not in (None, currency)]

    def version_on(self, day: date) -> PriceListVersion | None:
        """The version in effect on ``day``: the latest that started on or before it, unless
        it ended (``effective_to``) before ``day``."""
        current = None
        for version in self.versions:
            if version.effective_from <= day:
                current = version
        if current is None or (current.effective_to is not None and day >= current.effective_to):
            return None
        return current


def immutable_version_changes(stored: PriceList, new: PriceList, today: date) -> list[str]:
    """What ``new`` would change in versions of ``stored`` already effective on ``today``.

    A version that has taken effect has rated charges: it may not be edited or removed; a new
    version (with a later ``effective_from``) supersedes it. An empty list means the update is
    allowed.
    """
    problems = []
    incoming = {v.version: v for v in new.versions}
    for version in stored.versions:
        if version.effective_from > today:
            continue
        replacement = incoming.get(version.version)
        if replacement is None:
            problems.append(
                f"price list {stored.id!r} version {version.version} is effective since "
                f"{version.effective_from} and cannot be removed"
            )
        elif replacement != version:
            problems.append(
                f"price list {stored.id!r} version {version.version} is effective since "
                f"{version.effective_from} and cannot be changed: add a new version instead"
            )
    return problems


# --- rebilling policy ----------------------------------------------------------------------


class RebillingBasis(StrEnum):
    """What the rules apply to: the provider's actual (billed) cost, or the public on-demand
    (list) price of the line."""

    BILLED_COST = "billed_cost"
    ON_DEMAND = "on_demand"


class LineTreatment(StrEnum):
    """How a non-usage line reaches the customer.

    ``rate``: priced by the most specific markup/discount rule that matches it (at cost if none);
    ``at_cost``: passed on at cost, no markup; ``exclude``: not passed on (charged at 0, cost kept
    so margins stay true).
    """

    RATE = "rate"
    AT_COST = "at_cost"
    EXCLUDE = "exclude"


class CommitmentOwner(StrEnum):
    """Who bought a reservation or savings plan."""

    PAYER = "payer"
    ACCOUNT = "account"


class Rebilling(_Model):
    """A customer's rebilling policy. The defaults are documented in docs/rating.md."""

    basis: RebillingBasis = RebillingBasis.BILLED_COST
    savings_removal: bool = Field(
        default=True,
        description="Usage covered by a commitment the payer bought is charged at on-demand "
        "price; its negation and fee lines are not passed on.",
    )
    unknown_commitment_owner: CommitmentOwner = Field(
        default=CommitmentOwner.ACCOUNT,
        description="Owner assumed when a record names a commitment but not who bought it "
        "(FOCUS bills do not say).",
    )
    credits: LineTreatment = LineTreatment.AT_COST
    refunds: LineTreatment = LineTreatment.RATE
    taxes: LineTreatment = LineTreatment.EXCLUDE
    provider_discounts: LineTreatment = LineTreatment.EXCLUDE
    adjustments: LineTreatment = LineTreatment.RATE


# --- FX ------------------------------------------------------------------------------------


class FxRate(_Model):
    """1 ``base`` = ``rate`` ``quote``, from ``as_of`` (until a later rate of the pair)."""

    base: CurrencyCode
    quote: CurrencyCode
    as_of: date
    rate: WireDecimal = Field(gt=Decimal(0))

    @property
    def key(self) -> str:
        """Catalog key of the rate: ``BASE:QUOTE:YYYY-MM-DD``."""
        return f"{self.base}:{self.quote}:{self.as_of.isoformat()}"

    @model_validator(mode="after")
    def _check_pair(self) -> FxRate:
        if self.base == self.quote:
            msg = f"FX rate {self.base}->{self.quote}: base and quote must differ"
            raise ValueError(msg)
        return self
