"""Pricing a usage record for a customer: pure, no I/O.

``rate_usage(record, pricing, fx, state)`` is a function of its inputs only. Steps (the rules are
written out, with worked examples, in docs/rating.md):

1. The price-list version in effect on the record's charge date is chosen.
2. The line's treatment follows its type and the customer's rebilling policy: usage is priced by
   the most specific matching rule; usage covered by a commitment the payer bought is priced at
   its on-demand cost (savings removal) and that commitment's negation and fee lines are not
   passed on; credits, refunds, taxes, provider discounts and adjustments follow the policy
   (``rate`` by markup/discount rules, ``at_cost``, or ``exclude``).
3. The basis amount (billed cost, or on-demand price) is converted to the invoicing currency at
   the dated rate, then the rule applies. Price-list amounts are in the invoicing currency.
4. Period-cumulative rules (tiers, packages, minimums) place the record in the running total
   held by the explicit :class:`TierState` and return the :class:`Claim` to record.
5. A reversal (``charge_class`` ``correction`` naming the record it takes back in
   ``corrects_record_id``: a restated bill dropped or changed that line) is charged exactly
   minus what its original was charged so far (``original``, from what rating kept), whatever
   the rule; under a cumulative rule it also takes the original's claim back, and the re-pricing
   of the running total that this leaves (``F(total - amount) - F(total)`` minus the reversal's
   charge: the records placed after the original move down) is a separate charge,
   ``<record id>:tiers``, so the period's charges add up to a fresh rating of what remains.

Nothing is rounded: price, cost and margin are exact; the invoice rounds once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import TypeGuard

from billing_catalog.pricing import (
    PERCENT_RULES,
    CommitmentOwner,
    DiscountRule,
    LineTreatment,
    MarkupRule,
    MinimumRule,
    PackageRule,
    PriceList,
    PriceListVersion,
    Rebilling,
    RebillingBasis,
    Rule,
    TieredRule,
    TierMeasure,
    UnitDeltaRule,
    UnitPriceRule,
)
from billing_rating.domain.fx import FxError, FxQuote, FxTable
from billing_rating.domain.rerating import Emitted
from billing_rating.domain.tiers import (
    Claim,
    CumulativeRule,
    TierState,
    measure_of,
    price_of_claim,
)
from billing_schemas.events import LineType, RatedCharge, UsageRecord
from billing_schemas.trusted import trusted

HUNDRED = Decimal(100)
ZERO = Decimal(0)


class RatingError(ValueError):
    """A record that cannot be rated as it stands (the reason is in the message)."""


@dataclass(frozen=True)
class CustomerPricing:
    """What rating needs to know of the customer owning an account.

    ``price_list`` is the account's own price list when it has one, else the customer's.
    """

    customer_id: str
    currency: str
    price_list: PriceList
    rebilling: Rebilling = field(default_factory=Rebilling)


@dataclass(frozen=True)
class Rated:
    """A rated charge, and the claim on the period's running total to record (if any)."""

    charge: RatedCharge
    claim: Claim | None = None
    repricing: RatedCharge | None = None
    """A reversal's re-pricing of its running total (module docstring, step 5), if not 0."""


def reversed_record(record: UsageRecord) -> str | None:
    """The id of the record ``record`` takes back, if it is a reversal of a known record."""
    return record.corrects_record_id if record.charge_class == "correction" else None


class _Mode(StrEnum):
    USAGE = "usage"  # every rule kind
    PERCENT = "percent"  # markup/discount rules only, at cost if none matches
    AT_COST = "at_cost"
    EXCLUDE = "exclude"


@dataclass(frozen=True)
class _Treatment:
    mode: _Mode
    amount: Decimal  # the basis, in the record's currency
    basis: str  # what the amount is, for people and for the charge's ``basis`` field
    reason: str = ""


# --- matching ------------------------------------------------------------------------------


def usage_type_of(record: UsageRecord) -> str | None:
    """The record's usage type: AWS CUR's lineItem/UsageType, which ingest keeps as ``sku_id``
    (FOCUS has no such column; its ``SkuId`` is used the same way)."""
    return record.sku_id


def rule_matches(rule: Rule, record: UsageRecord) -> bool:
    """Whether every scope field and filter the rule sets equals the record's."""
    usage_type = usage_type_of(record)
    return (
        (rule.provider is None or rule.provider == record.provider)
        and (rule.service is None or rule.service == record.service_name)
        and (rule.sku is None or rule.sku == record.sku_id)
        and (rule.region is None or rule.region == record.region)
        and (
            rule.usage_type is None
            or (usage_type is not None and fnmatchcase(usage_type, rule.usage_type))
        )
    )


def select_rule(
    version: PriceListVersion, record: UsageRecord, *, percent_only: bool = False
) -> Rule | None:
    """The most specific rule of the version matching the record (``None`` if none matches).

    Ties are refused when the price list is loaded; two usage-type globs that both match the
    record are the one tie only a record can reveal, and it is refused here, naming both rules.
    """
    best: list[Rule] = []
    for rule in version.rules:
        if percent_only and not isinstance(rule, PERCENT_RULES):
            continue
        if not rule_matches(rule, record):
            continue
        if not best or rule.specificity > best[0].specificity:
            best = [rule]
        elif rule.specificity == best[0].specificity:
            best.append(rule)
    if len(best) > 1:
        names = ", ".join(r.rule_id for r in best)
        msg = f"record {record.record_id}: rules {names} tie (their usage-type globs overlap)"
        raise RatingError(msg)
    return best[0] if best else None


# --- treatment -----------------------------------------------------------------------------

_POLICY_FIELD = {
    LineType.CREDIT: "credits",
    LineType.REFUND: "refunds",
    LineType.TAX: "taxes",
    LineType.DISCOUNT: "provider_discounts",
    LineType.ADJUSTMENT: "adjustments",
}

_MODE_OF = {
    LineTreatment.RATE: _Mode.PERCENT,
    LineTreatment.AT_COST: _Mode.AT_COST,
    LineTreatment.EXCLUDE: _Mode.EXCLUDE,
}


def _on_demand(record: UsageRecord) -> Decimal | None:
    return record.on_demand_cost if record.on_demand_cost is not None else record.list_cost


def _treatment(record: UsageRecord, policy: Rebilling) -> _Treatment:
    """How the line reaches the customer, and on what amount (module docstring, step 2)."""
    billed = record.billed_cost
    line = record.line_type
    if line in _POLICY_FIELD:
        name = _POLICY_FIELD[line]
        treatment: LineTreatment = getattr(policy, name)
        return _Treatment(_MODE_OF[treatment], billed, "billed cost", f"{name}: {treatment}")
    owner = record.commitment_owner or policy.unknown_commitment_owner.value
    payer_bought = policy.savings_removal and owner == CommitmentOwner.PAYER.value
    if line is LineType.COMMITMENT_COVERED:
        if not payer_bought:
            return _Treatment(_Mode.PERCENT, billed, "billed cost", "own commitment passed through")
        on_demand = _on_demand(record)
        if on_demand is None:
            msg = (
                f"record {record.record_id}: usage covered by payer commitment "
                f"{record.commitment_id} has no on-demand or list cost to charge (savings removal)"
            )
            raise RatingError(msg)
        return _Treatment(_Mode.USAGE, on_demand, "on-demand cost", "payer commitment removed")
    if line in (LineType.COMMITMENT_NEGATION, LineType.COMMITMENT_FEE):
        if payer_bought:
            return _Treatment(
                _Mode.EXCLUDE, billed, "billed cost", "payer commitment: savings removal"
            )
        return _Treatment(_Mode.PERCENT, billed, "billed cost", "own commitment passed through")
    # on-demand usage and anything else
    if policy.basis is RebillingBasis.ON_DEMAND:
        on_demand = _on_demand(record)
        if on_demand is not None:
            return _Treatment(_Mode.USAGE, on_demand, "on-demand cost")
        return _Treatment(_Mode.USAGE, billed, "billed cost", "no on-demand price on the record")
    return _Treatment(_Mode.USAGE, billed, "billed cost")


# --- rules ---------------------------------------------------------------------------------


def _pct(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _quantity(record: UsageRecord, rule: Rule) -> Decimal:
    if record.pricing_quantity is None:
        msg = (
            f"record {record.record_id}: rule {rule.rule_id} prices by quantity but the record "
            "has no pricing quantity"
        )
        raise RatingError(msg)
    return record.pricing_quantity


def apply_simple_rule(rule: Rule, basis: Decimal, record: UsageRecord) -> tuple[Decimal, str]:
    """Price of a rule that needs no period state, and how it reads."""
    if isinstance(rule, MarkupRule):
        return basis * (HUNDRED + rule.percent) / HUNDRED, f"markup {_pct(rule.percent)}%"
    if isinstance(rule, DiscountRule):
        return basis * (HUNDRED - rule.percent) / HUNDRED, f"discount {_pct(rule.percent)}%"
    if isinstance(rule, UnitDeltaRule):
        quantity = _quantity(record, rule)
        return basis + quantity * rule.delta, f"{_pct(rule.delta)} per unit added"
    if isinstance(rule, UnitPriceRule):
        quantity = _quantity(record, rule)
        return quantity * rule.unit_price, f"unit price {_pct(rule.unit_price)}"
    msg = f"rule {rule.rule_id} ({rule.kind}) needs the period's running total"
    raise TypeError(msg)


def _cumulative_text(rule: CumulativeRule) -> str:
    if isinstance(rule, TieredRule):
        return f"{rule.mode.value} tiers on {rule.measure.value}"
    if isinstance(rule, PackageRule):
        return f"package of {_pct(rule.size)} at {_pct(rule.price)}"
    return f"minimum {_pct(rule.amount)} per period"


_CUMULATIVE_KINDS: dict[type[Rule], bool] = {}


def is_cumulative(rule: Rule) -> TypeGuard[CumulativeRule]:
    """Whether the rule prices by the period's running total (tiers, packages, minimums).

    Answered per rule class, once: ``isinstance`` against a union of pydantic models goes
    through ``ABCMeta.__instancecheck__`` for each class that does not match (~2.7 us a record
    for a markup rule, measured).
    """
    kind = type(rule)
    cumulative = _CUMULATIVE_KINDS.get(kind)
    if cumulative is None:
        cumulative = issubclass(kind, TieredRule | PackageRule | MinimumRule)
        _CUMULATIVE_KINDS[kind] = cumulative
    return cumulative


def state_key(customer_id: str, period: str, price_list_id: str, rule: Rule) -> str:
    """Where a cumulative rule's running total is kept: per customer, period, price list and
    rule id (so a new version keeping the rule's id continues the period's count)."""
    return f"{customer_id}|{period}|{price_list_id}|{rule.rule_id}"


# --- rating --------------------------------------------------------------------------------


def charge_day(record: UsageRecord) -> date:
    """The date that picks the price-list version and the FX rate: the charge's start (UTC)."""
    return record.charge_period_start.date()


def version_for(record: UsageRecord, pricing: CustomerPricing) -> PriceListVersion:
    """The price-list version in effect on the record's charge date."""
    day = charge_day(record)
    version = pricing.price_list.version_on(day)
    if version is None:
        msg = (
            f"record {record.record_id}: price list {pricing.price_list.id!r} has no version "
            f"in effect on {day}"
        )
        raise RatingError(msg)
    if version.currency not in (None, pricing.currency):
        # the catalog refuses this on load; a price list stored before that check, or written
        # to the database directly, must not have its amounts billed as another currency
        msg = (
            f"record {record.record_id}: price list {pricing.price_list.id!r} version "
            f"{version.version} has amounts in {version.currency} but customer "
            f"{pricing.customer_id!r} is invoiced in {pricing.currency}"
        )
        raise RatingError(msg)
    return version


@dataclass(frozen=True)
class Plan:
    """What rating a record takes besides its amounts: the version in effect, the line's
    treatment, the rule chosen and, for a period-cumulative rule, its state key."""

    version: PriceListVersion
    treatment: _Treatment
    rule: Rule | None
    state_key: str | None


_RuleScope = tuple[int, str, str, str | None, str | None, str | None, bool]


@dataclass
class Choices:
    """The version and rule choices of one batch, each made once: a batch of thousands of
    records holds a handful of distinct (price list, charge day) and (version, line scope)
    pairs, and choosing a rule compares the record with every rule of the version.

    Only choices that succeed are kept (a record that cannot be rated is told why with its own
    id). Keys hold the price lists' and versions' ``id()``: the memo keeps those objects, so an
    id is never reused while it is a key. Make one per batch (a new catalog, a new memo).
    """

    _versions: dict[tuple[int, str, date], PriceListVersion] = field(default_factory=dict)
    _rules: dict[_RuleScope, Rule | None] = field(default_factory=dict)
    _kept: list[object] = field(default_factory=list)

    def version(self, record: UsageRecord, pricing: CustomerPricing) -> PriceListVersion:
        """:func:`version_for`, once per price list, invoicing currency and charge day."""
        key = (id(pricing.price_list), pricing.currency, charge_day(record))
        version = self._versions.get(key)
        if version is None:
            version = self._versions[key] = version_for(record, pricing)
            self._kept.append(pricing.price_list)
        return version

    def rule(
        self, version: PriceListVersion, record: UsageRecord, *, percent_only: bool
    ) -> Rule | None:
        """:func:`select_rule`, once per version and the record fields rules match on."""
        key = (
            id(version),
            record.provider,
            record.service_name,
            record.sku_id,
            record.region,
            usage_type_of(record),
            percent_only,
        )
        if key in self._rules:
            return self._rules[key]
        rule = self._rules[key] = select_rule(version, record, percent_only=percent_only)
        self._kept.append(version)
        return rule


def plan_usage(
    record: UsageRecord, pricing: CustomerPricing, choices: Choices | None = None
) -> Plan:
    """Choose the version, treatment and rule of a record (steps 1-2 of the module docstring).

    A caller rating a batch plans each record once: the state keys say which period state to
    load, and :func:`rate_usage` takes the plan instead of choosing the rule again. ``choices``
    is the batch's memo of version and rule choices (a fresh one if not given).
    """
    choices = choices or Choices()
    version = choices.version(record, pricing)
    treatment = _treatment(record, pricing.rebilling)
    rule: Rule | None = None
    key: str | None = None
    if treatment.mode in (_Mode.USAGE, _Mode.PERCENT):
        rule = choices.rule(version, record, percent_only=treatment.mode is _Mode.PERCENT)
        if rule is not None and is_cumulative(rule):
            key = state_key(pricing.customer_id, record.billing_period, pricing.price_list.id, rule)
    return Plan(version, treatment, rule, key)


def cumulative_key(record: UsageRecord, pricing: CustomerPricing) -> str | None:
    """The state key the record's rating reads, if its rule is period-cumulative.

    Lets a caller load just the state a batch needs before rating it; a record that cannot be
    rated has no key (``rate_usage`` will say why).
    """
    try:
        return plan_usage(record, pricing).state_key
    except RatingError:
        return None


def _fx(record: UsageRecord, pricing: CustomerPricing, fx: FxTable) -> FxQuote | None:
    if record.currency == pricing.currency:
        return None
    try:
        return fx.quote(record.currency, pricing.currency, charge_day(record))
    except FxError as exc:
        msg = f"record {record.record_id} for customer {pricing.customer_id}: {exc}"
        raise RatingError(msg) from None


def rate_usage(
    record: UsageRecord,
    pricing: CustomerPricing,
    fx: FxTable | None = None,
    state: TierState | None = None,
    plan: Plan | None = None,
    *,
    original: Emitted | None = None,
) -> Rated:
    """Rate one usage record (module docstring). Pure: ``state`` is read, not changed; the
    returned claim, if any, is what the caller records. ``plan`` is :func:`plan_usage` of the
    same record and pricing, if the caller made it already. ``original`` is what was charged
    for the record a reversal takes back (:func:`reversed_record`): required for a reversal."""
    reverses = reversed_record(record)
    if reverses is not None and original is None:
        msg = (
            f"record {record.record_id} reverses record {reverses}, which rating has not "
            f"charged to customer {pricing.customer_id!r} in {record.billing_period} "
            "(dead-lettered or not rated yet): rate that record first, then replay this one"
        )
        raise RatingError(msg)
    plan = plan or plan_usage(record, pricing)
    quote = _fx(record, pricing, fx or FxTable())
    price, text, claim = _price(record, pricing, plan, quote, state or TierState())
    moved = price  # a reversal's claim: what it moved the price of its running total by
    if original is not None:
        price, text = -original.price, f"reversal of {reverses}: {text}"
    charge = _charge(record, pricing, plan, quote, price=price, text=text)
    if original is None or claim is None or moved == price:
        return Rated(charge, claim)
    return Rated(charge, claim, _repricing(charge, plan, moved - price, reverses))


def _converted(amount: Decimal, quote: FxQuote | None) -> Decimal:
    return amount if quote is None else quote.convert(amount)


def _price(
    record: UsageRecord,
    pricing: CustomerPricing,
    plan: Plan,
    quote: FxQuote | None,
    state: TierState,
) -> tuple[Decimal, str, Claim | None]:
    """The price by the line's treatment (step 3 of the module docstring), how it reads, and
    the claim a cumulative rule makes."""
    treatment = plan.treatment
    basis = _converted(treatment.amount, quote)
    if treatment.mode is _Mode.EXCLUDE:
        return ZERO, f"not passed on ({treatment.reason})", None
    if treatment.mode is _Mode.AT_COST:
        return basis, f"at cost ({treatment.reason})", None
    price, text, claim = _by_rule(record, pricing, plan, basis, state)
    if treatment.reason:
        text = f"{text}; {treatment.reason}"
    return price, text, claim


def _charge(
    record: UsageRecord,
    pricing: CustomerPricing,
    plan: Plan,
    quote: FxQuote | None,
    *,
    price: Decimal,
    text: str,
) -> RatedCharge:
    """The charge of a record at ``price``: the record's facts, its cost and margin in the
    invoicing currency, and how it was priced."""
    cost = record.billed_cost
    listed = _on_demand(record)
    # every value is typed already (the record and the catalog were validated): no validation
    return trusted(
        RatedCharge,
        charge_id=record.record_id,
        record_id=record.record_id,
        customer_id=pricing.customer_id,
        provider=record.provider,
        sub_account_id=record.sub_account_id,
        billing_period=record.billing_period,
        charge_period_start=record.charge_period_start,
        charge_category=record.charge_category,
        line_type=record.line_type,
        service_name=record.service_name,
        sku_id=record.sku_id,
        description=record.description,
        region=record.region,
        quantity=record.pricing_quantity,
        unit=record.pricing_unit,
        cost=cost,
        cost_currency=record.currency,
        price=price,
        currency=pricing.currency,
        margin=price - _converted(cost, quote),
        fx_rate=None if quote is None else quote.rate,
        fx_rate_date=None if quote is None else quote.as_of,
        rule=text,
        rule_ids=[] if plan.rule is None else [plan.rule.rule_id],
        basis=plan.treatment.basis,
        basis_amount=plan.treatment.amount,
        price_list_id=pricing.price_list.id,
        price_list_version=plan.version.version,
        charge_period_end=record.charge_period_end,
        sub_account_name=record.sub_account_name,
        service_category=record.service_category,
        sku_price_id=record.sku_price_id,
        list_cost=None if listed is None else _converted(listed, quote),
        charge_class=record.charge_class,
    )


def _by_rule(
    record: UsageRecord, pricing: CustomerPricing, plan: Plan, basis: Decimal, state: TierState
) -> tuple[Decimal, str, Claim | None]:
    """The price by the plan's rule, how it reads, and the claim a cumulative rule makes (a
    reversal's takes its original's back, and its price is what the total moved by)."""
    rule, how = plan.rule, plan.treatment.basis
    if rule is None:
        return basis, f"at {how}, no rule matches", None
    if is_cumulative(rule):
        key = _key(record, pricing, rule, plan)
        reverses = reversed_record(record)
        if reverses is None:
            claim: Claim | None = _claim(record, rule, basis, state, key)
        else:
            claim = _reversal_claim(record, reverses, rule, state, key)
        price = ZERO if claim is None else price_of_claim(rule, claim)
        return price, f"{_cumulative_text(rule)} on {how} ({rule.scope_text()})", claim
    price, text = apply_simple_rule(rule, basis, record)
    return price, f"{text} on {how} ({rule.scope_text()})", None


def _repricing(
    charge: RatedCharge, plan: Plan, amount: Decimal, reverses: str | None
) -> RatedCharge:
    """The charge carrying what taking a reversal's original back re-priced in its running
    total, beyond the reversal's own charge (no cost: the records were costed already)."""
    rule = plan.rule
    assert isinstance(rule, TieredRule | PackageRule | MinimumRule)  # only they make claims
    return charge.model_copy(
        update={
            "charge_id": f"{charge.record_id}:tiers",
            "quantity": None,
            "cost": ZERO,
            "price": amount,
            "margin": amount,
            "basis_amount": ZERO,
            "list_cost": ZERO,
            "rule": (
                f"{_cumulative_text(rule)} ({rule.scope_text()}): the period's running total "
                f"re-priced after the reversal of {reverses}"
            ),
        }
    )


def _key(record: UsageRecord, pricing: CustomerPricing, rule: Rule, plan: Plan | None) -> str:
    if plan is not None and plan.state_key is not None:
        return plan.state_key
    return state_key(pricing.customer_id, record.billing_period, pricing.price_list.id, rule)


def _below_zero(record: UsageRecord, rule: CumulativeRule, claim: Claim) -> RatingError:
    return RatingError(
        f"record {record.record_id}: {measure_of(rule).value} {claim.end - claim.start} would "
        f"take the period's running total of rule {rule.rule_id} from {claim.start} below "
        "zero (a reversal or credit before the usage it takes back)"
    )


def _claim(
    record: UsageRecord, rule: CumulativeRule, basis: Decimal, state: TierState, key: str
) -> Claim:
    """The record's place in the running total; a negative amount (a provider's own reversal
    or credit written as usage, as Azure does) moves the total back, not below zero."""
    amount = _quantity(record, rule) if measure_of(rule) is TierMeasure.QUANTITY else basis
    claim = state.claim_for(key, record.record_id, amount)
    if claim.end < 0:
        raise _below_zero(record, rule, claim)
    return claim


def _reversal_claim(
    record: UsageRecord, reverses: str, rule: CumulativeRule, state: TierState, key: str
) -> Claim | None:
    """The claim that takes the original's back: the original's amount negated, at the end of
    the running total (``None`` if the original holds no place in this key: nothing to take)."""
    own = state.claims.get((key, record.record_id))
    if own is not None:  # rated again (a redelivery)
        return own
    taken = state.claims.get((key, reverses))
    if taken is None:
        return None
    claim = state.claim_for(key, record.record_id, taken.start - taken.end, reverses=reverses)
    if claim.end < 0:
        raise _below_zero(record, rule, claim)
    return claim


def rate_all(
    records: list[UsageRecord],
    pricing: CustomerPricing,
    fx: FxTable | None = None,
    state: TierState | None = None,
) -> tuple[list[RatedCharge], TierState]:
    """Rate records in order for one customer, threading the period state through them (a
    reversal takes back what these records charged its original).

    Returns the charges, each reversal's re-pricing after it, and the state after them (the
    input state is not changed).
    """
    after = TierState(dict(state.heads), dict(state.claims)) if state else TierState()
    charges = []
    charged: dict[str, Emitted] = {}
    for record in records:
        reverses = reversed_record(record)
        original = None if reverses is None else charged.get(reverses)
        rated = rate_usage(record, pricing, fx, after, original=original)
        if rated.claim is not None:
            after.apply(rated.claim)
        charges.append(rated.charge)
        charged[record.record_id] = Emitted(rated.charge.price, 1)
        if rated.repricing is not None:
            charges.append(rated.repricing)
    return charges, after
