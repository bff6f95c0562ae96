"""Invoice assembly: pure rules, no I/O.

An invoice is computed in six steps (the reseller's "Generate invoices"), then taxed:

1. the fees of the customer's subscriptions active in the period are added (prorated to the
   days they were active, per plan: ``domain/proration.py``);
2. the cloud infrastructure those plans include (pre-purchased) is totalled;
3. the period's cloud charges, rated with the customer's price list, are added, one line per
   provider, service and kind of charge (usage, purchase, unused commitment, credit, refund,
   provider discount, provider tax, adjustment, correction: :func:`charge_kind`), so that a
   reservation bought or a credit is never folded into the usage of its service;
4. savings of reservations and savings plans the payer bought are already removed by rating
   (such usage is charged at its on-demand price); the amount removed is shown;
5. the included infrastructure is subtracted from the cloud charges;
6. underuse (cloud charges below what is included) gives no discount and overuse is billed, by
   default; per customer, underuse may be credited and overuse waived.

Late usage (charges of an earlier period whose invoice was already finalized) comes as dated
correction lines; it is not netted against this period's included infrastructure, and it is
taxed by the regime of the period it belongs to (the rate in force at that period's end).

Amounts stay exact until the invoice is assembled; then the subtotal is rounded once to the
currency's minor units and the lines are rounded so that they add up to it (largest-remainder
allocation, see ``billing_schemas.money.allocate_rounded``). Taxes are computed per rate on the
unrounded amounts and rounded once (``domain/tax.py``).
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from billing_catalog.models import (
    Customer,
    InvoicingEntity,
    OverusePolicy,
    PaymentMethod,
    Plan,
    Subscription,
    TaxRate,
    UnderusePolicy,
)
from billing_invoicing.domain.one_off import is_one_off, is_tax_exempt
from billing_invoicing.domain.proration import subscription_spans
from billing_invoicing.domain.tax import (
    EXEMPT_REGIME,
    TaxAmount,
    TaxRegime,
    compute_taxes,
    tax_regime,
)
from billing_schemas.events import ChargeCategory, LineType
from billing_schemas.money import allocate_rounded, round_to_minor


class InvoiceStatus(StrEnum):
    """Lifecycle: draft -> finalizing -> finalized -> partially paid / paid / overdue / void.

    ``finalizing``: frozen at its period-close marker (charges after it go to the next invoice),
    being numbered and rendered.
    """

    DRAFT = "draft"
    FINALIZING = "finalizing"
    FINALIZED = "finalized"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    OVERDUE = "overdue"
    VOID = "void"


class LineKind(StrEnum):
    """What an invoice line is."""

    SUBSCRIPTION = "subscription"  # step 1: a plan's recurring fee
    USAGE = "usage"  # step 3: the period's cloud charges of one provider and service
    INCLUDED = "included"  # steps 5-6: included infrastructure netted (negative)
    CORRECTION = "correction"  # late usage of an earlier, finalized period
    ONE_OFF = "one_off"  # a charge an operator added (setup fee, support hours, hardware)


class ChargeKind(StrEnum):
    """What a cloud charge is, whatever the provider: each kind is its own invoice line, so a
    purchase, a credit or a correction is never folded into a service's usage."""

    USAGE = "usage"
    PURCHASE = "purchase"  # a reservation, savings plan or marketplace item bought, a fee
    UNUSED_COMMITMENT = "unused_commitment"  # the idle part of a commitment (unused hours)
    CREDIT = "credit"
    REFUND = "refund"
    DISCOUNT = "discount"  # a provider's discount (EDP, private rate, bundled)
    TAX = "tax"  # a tax the provider charged, passed on
    ADJUSTMENT = "adjustment"
    CORRECTION = (
        "correction"  # corrects an earlier line (FOCUS ChargeClass, restatement, re-rating)
    )


def charge_kind(
    category: ChargeCategory, line_type: LineType, charge_class: str | None = None
) -> ChargeKind:
    """The kind of a rated charge, from its FOCUS charge category, its line type and its
    charge class. A correction is a correction whatever it corrects; a commitment fee is a
    purchase, except the unused part of a commitment (FOCUS ``Usage`` with status ``Unused``,
    Azure's ``UnusedReservation``), which is billed as usage by the provider; the commitment's
    covered usage and its negation are usage."""
    if charge_class == "correction":
        return ChargeKind.CORRECTION
    if line_type is LineType.COMMITMENT_FEE:
        if category is ChargeCategory.USAGE:
            return ChargeKind.UNUSED_COMMITMENT
        return ChargeKind.PURCHASE
    return _KIND_OF_LINE_TYPE.get(line_type) or _KIND_OF_CATEGORY[category]


_KIND_OF_LINE_TYPE = {
    LineType.CREDIT: ChargeKind.CREDIT,
    LineType.REFUND: ChargeKind.REFUND,
    LineType.DISCOUNT: ChargeKind.DISCOUNT,
    LineType.TAX: ChargeKind.TAX,
    LineType.ADJUSTMENT: ChargeKind.ADJUSTMENT,
}
_KIND_OF_CATEGORY = {
    ChargeCategory.USAGE: ChargeKind.USAGE,
    ChargeCategory.PURCHASE: ChargeKind.PURCHASE,
    ChargeCategory.TAX: ChargeKind.TAX,
    ChargeCategory.CREDIT: ChargeKind.CREDIT,
    ChargeCategory.ADJUSTMENT: ChargeKind.ADJUSTMENT,
}
_KIND_TEXT = {
    ChargeKind.PURCHASE: "purchase",
    ChargeKind.UNUSED_COMMITMENT: "unused commitment",
    ChargeKind.CREDIT: "credit",
    ChargeKind.REFUND: "refund",
    ChargeKind.DISCOUNT: "provider discount",
    ChargeKind.TAX: "provider tax",
    ChargeKind.ADJUSTMENT: "adjustment",
    ChargeKind.CORRECTION: "correction",
}


class NettingKind(StrEnum):
    """Which netting line an ``included`` line is (steps 5-6)."""

    COVERED = "covered"  # the cloud charges the included infrastructure covers
    UNDERUSE = "underuse"  # included but not used, credited
    OVERUSE = "overuse"  # the overage, waived


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ChargeGroup(_Model):
    """The exact sum of one group of rated charges (what the database aggregation returns)."""

    provider: str
    service_name: str
    charge_count: int = Field(ge=0)
    cost: Decimal
    price: Decimal
    period: str | None = Field(
        default=None, description="The charges' billing period (None: the invoice's)."
    )
    savings_removed: Decimal = Field(
        default=Decimal(0),
        description="On-demand price minus billed cost of usage covered by payer-bought "
        "commitments (what savings removal kept), in the invoicing currency.",
    )
    charge_kind: ChargeKind = ChargeKind.USAGE


class InvoiceLine(_Model):
    """One line on the invoice document."""

    description: str
    provider: str
    service_name: str
    charge_count: int
    cost: Decimal = Field(description="Exact provider cost behind the line (not printed).")
    amount_exact: Decimal
    amount: Decimal = Field(description="Rounded to minor units; lines add up to the subtotal.")
    kind: LineKind = LineKind.USAGE
    period: str | None = Field(default=None, description="Correction lines: the usage period.")
    charge_kind: ChargeKind = Field(
        default=ChargeKind.USAGE, description="Cloud lines: what their charges are."
    )
    plan: str | None = Field(default=None, description="Subscription lines: the plan's name.")
    quantity: int | None = Field(default=None, description="Subscription lines: how many.")
    netting: NettingKind | None = Field(
        default=None, description="Included lines: which part of the netting."
    )
    first_day: date | None = Field(
        default=None, description="Subscription lines: the first day charged (of the period)."
    )
    last_day: date | None = Field(
        default=None, description="Subscription lines: the last day charged (inclusive)."
    )
    days: int | None = Field(default=None, description="Subscription lines: the days charged.")
    period_days: int | None = Field(
        default=None, description="Subscription lines: the days of the period."
    )

    @property
    def prorated(self) -> bool:
        """Whether the line charges fewer days than its period has (a prorated span)."""
        return (
            self.days is not None
            and self.period_days is not None
            and (self.days < self.period_days)
        )


class Netting(_Model):
    """Steps 2 and 4-6: the included infrastructure against the period's cloud charges (exact)."""

    included: Decimal = Field(description="Step 2: pre-purchased in the plans.")
    cloud_charges: Decimal = Field(description="Step 3: the period's cloud charges.")
    savings_removed: Decimal = Field(description="Step 4: payer-commitment savings removed.")
    covered: Decimal = Field(description="Step 5: the cloud charges the included part covers.")
    underuse: Decimal = Field(description="Included but not used.")
    overuse: Decimal = Field(description="Used beyond what is included (the overage).")
    underuse_policy: UnderusePolicy
    overuse_policy: OverusePolicy
    billed_cloud: Decimal = Field(description="Step 6: what the cloud charges add to the invoice.")


class Party(_Model):
    """A seller or buyer block on the invoice."""

    name: str
    address_lines: list[str]
    country: str
    vat_id: str | None = None
    email: str | None = None


class InvoiceDocument(_Model):
    """An assembled invoice, ready to be stored and rendered."""

    invoice_id: str
    customer_id: str
    invoicing_entity_id: str
    period: str
    currency: str
    language: str
    seller: Party
    buyer: Party
    lines: list[InvoiceLine]
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    outstanding: Decimal
    payment_methods: list[PaymentMethod]
    credit_applied: Decimal = Field(
        default=Decimal(0),
        description="The customer's credit balance taken off at finalization (after tax; "
        "``outstanding = max(total, 0) - credit_applied``).",
    )
    taxes: list[TaxAmount] = Field(default_factory=list)
    tax_mention: str | None = None
    netting: Netting | None = None
    number: str | None = None
    status: InvoiceStatus = InvoiceStatus.DRAFT
    issue_date: date | None = None
    due_date: date | None = None


def with_credit_applied(document: InvoiceDocument, credit: Decimal) -> InvoiceDocument:
    """The issued document with ``credit`` of the customer's balance taken off what it asks
    to be paid (``domain/credit.py``: at most its total, so never below zero due); its lines,
    taxes and total are unchanged."""
    if not credit:
        return document
    due = max(document.total, Decimal(0))
    if not Decimal(0) < credit <= due:
        msg = f"{document.invoice_id}: cannot apply {credit} of credit to {due} due"
        raise ValueError(msg)
    return document.model_copy(update={"credit_applied": credit, "outstanding": due - credit})


def invoice_id_for(customer_id: str, period: str) -> str:
    """An invoice's id is its customer and period: one invoice per customer and period."""
    return f"{customer_id}:{period}"


def period_bounds(period: str) -> tuple[date, date]:
    """First and last day of a ``YYYY-MM`` period."""
    year, month = (int(p) for p in period.split("-"))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def due_date_for(issue_date: date, payment_terms_days: int) -> date:
    """The due date is the issue date plus the customer's payment terms in days."""
    return issue_date + timedelta(days=payment_terms_days)


def format_invoice_number(prefix: str, year: int, sequence: int) -> str:
    """``<prefix><year>-<sequence, 6 digits>``, e.g. ``ACME-2024-000042``."""
    return f"{prefix}{year}-{sequence:06d}"


def active_subscriptions(subscriptions: Sequence[Subscription], period: str) -> list[Subscription]:
    """Subscriptions that overlap the period: started on or before its last day and not ended
    on or before its first (what each owes: ``subscription_lines``)."""
    first, last = period_bounds(period)
    return [s for s in subscriptions if s.start <= last and (s.end is None or s.end > first)]


def net_included(
    *,
    included: Decimal,
    cloud_charges: Decimal,
    savings_removed: Decimal,
    customer: Customer,
) -> Netting:
    """Steps 5 and 6: subtract the included infrastructure from the cloud charges.

    ``covered = min(max(cloud, 0), included)``; the rest of the included amount is underuse, the
    rest of the cloud charges overuse. Billed cloud = cloud - covered, less the underuse when the
    customer's policy credits it, less the overuse when its policy waives it. By default
    (no_discount, bill) the customer pays ``max(cloud - included, 0)`` for cloud.
    """
    policy = customer.included_infrastructure
    usable = max(cloud_charges, Decimal(0))
    covered = min(usable, included)
    underuse = included - covered
    overuse = usable - covered
    billed = cloud_charges - covered
    if policy.underuse is UnderusePolicy.CREDIT:
        billed -= underuse
    if policy.overuse is OverusePolicy.WAIVE:
        billed -= overuse
    return Netting(
        included=included,
        cloud_charges=cloud_charges,
        savings_removed=savings_removed,
        covered=covered,
        underuse=underuse,
        overuse=overuse,
        underuse_policy=policy.underuse,
        overuse_policy=policy.overuse,
        billed_cloud=billed,
    )


def subscription_lines(
    customer: Customer, plans: Mapping[str, Plan], period: str
) -> tuple[list[InvoiceLine], Decimal]:
    """Steps 1 and 2: a line per subscription active in the period (per span of one quantity
    when prorated, ``domain/proration.py``) and the infrastructure they include. Each line
    carries its span (first and last day, days charged of the period's days), which the PDF
    prints and the e-invoices state as the line's period."""
    lines: list[InvoiceLine] = []
    included = Decimal(0)
    for sub in active_subscriptions(customer.subscriptions, period):
        plan = plans.get(sub.plan)
        if plan is None:
            msg = f"customer {customer.id!r} subscribes to plan {sub.plan!r}, not in the catalog"
            raise LookupError(msg)
        for span in subscription_spans(sub, plan, period):
            times = f" x {span.quantity}" if span.quantity > 1 else ""
            days = (
                f", {span.first_day.isoformat()} to {span.last_day.isoformat()} "
                f"({span.days}/{span.period_days} days)"
                if span.prorated
                else ""
            )
            lines.append(
                _line(
                    f"{plan.name} subscription{times}{days}",
                    LineKind.SUBSCRIPTION,
                    span.fee,
                    plan=plan.name,
                    quantity=span.quantity,
                    first_day=span.first_day,
                    last_day=span.last_day,
                    days=span.days,
                    period_days=span.period_days,
                )
            )
            included += span.included
    return lines, included


_KIND_ORDER = {kind: position for position, kind in enumerate(ChargeKind)}


def _unbilled_into_usage(groups: Sequence[ChargeGroup]) -> list[ChargeGroup]:
    """Charges of another kind priced 0 (not passed on: a payer-bought reservation's fee under
    savings removal) stay counted on their service's usage line, where there is one, instead
    of printing a line of 0.00; their count and cost are kept there."""

    def key(g: ChargeGroup) -> tuple[str | None, str, str]:
        return (g.period, g.provider, g.service_name)

    usage = {key(g): g for g in groups if g.charge_kind is ChargeKind.USAGE}
    out: list[ChargeGroup] = []
    for g in groups:
        if g.charge_kind is ChargeKind.USAGE:
            continue
        line = usage.get(key(g))
        if g.price != 0 or line is None:
            out.append(g)
            continue
        usage[key(g)] = line.model_copy(
            update={
                "charge_count": line.charge_count + g.charge_count,
                "cost": line.cost + g.cost,
                "savings_removed": line.savings_removed + g.savings_removed,
            }
        )
    return list(usage.values()) + out


def _kind_suffix(kind: ChargeKind) -> str:
    # the English description (e-invoices' item name); the PDF labels kinds in its language
    return "" if kind is ChargeKind.USAGE else f": {_KIND_TEXT[kind]}"


def _line(
    description: str, kind: LineKind, amount: Decimal, **what: str | int | date | NettingKind
) -> InvoiceLine:
    return InvoiceLine.model_validate(
        {
            "description": description,
            "provider": "",
            "service_name": "",
            "charge_count": 0,
            "cost": Decimal(0),
            "amount_exact": amount,
            "amount": amount,  # rounded below with the others
            "kind": kind,
            **what,
        }
    )


def one_off_lines(groups: Sequence[ChargeGroup], period: str) -> list[InvoiceLine]:
    """The lines of the one-off charges among ``groups`` (``domain/one_off.py``): each
    described as the operator wrote it, dated when it belongs to another period."""
    one_offs = sorted(
        (g for g in groups if is_one_off(g.provider)),
        key=lambda g: (g.period or "", g.service_name, g.provider),
    )
    return [
        InvoiceLine(
            description=g.service_name,
            provider=g.provider,
            service_name=g.service_name,
            charge_count=g.charge_count,
            cost=g.cost,
            amount_exact=g.price,
            amount=g.price,
            kind=LineKind.ONE_OFF,
            period=None if g.period in (None, period) else g.period,
        )
        for g in one_offs
    ]


def _split_cloud_groups(
    groups: Sequence[ChargeGroup], period: str
) -> tuple[list[ChargeGroup], list[ChargeGroup]]:
    """The cloud charge groups (one-off charges left out) of the period and, apart, the late
    usage of earlier periods, each in the order they are printed."""
    cloud_groups = _unbilled_into_usage([g for g in groups if not is_one_off(g.provider)])
    current = sorted(
        (g for g in cloud_groups if g.period in (None, period)),
        key=lambda g: (_KIND_ORDER[g.charge_kind], g.provider, g.service_name),
    )
    late = sorted(
        (g for g in cloud_groups if g.period not in (None, period)),
        key=lambda g: (g.period or "", _KIND_ORDER[g.charge_kind], g.provider, g.service_name),
    )
    return current, late


def cloud_lines(current: Sequence[ChargeGroup]) -> list[InvoiceLine]:
    """Step 3: a line per service and kind of the period's cloud charges."""
    return [
        InvoiceLine(
            description=f"{g.service_name} ({g.provider}){_kind_suffix(g.charge_kind)}",
            provider=g.provider,
            service_name=g.service_name,
            charge_count=g.charge_count,
            cost=g.cost,
            amount_exact=g.price,
            amount=g.price,
            charge_kind=g.charge_kind,
        )
        for g in current
    ]


def late_usage_lines(late: Sequence[ChargeGroup]) -> list[InvoiceLine]:
    """Late usage of earlier periods, as corrections dated with the period they belong to."""
    return [
        InvoiceLine(
            description=f"{g.service_name} ({g.provider}){_kind_suffix(g.charge_kind)}: "
            f"usage of {g.period}, received after its invoice",
            provider=g.provider,
            service_name=g.service_name,
            charge_count=g.charge_count,
            cost=g.cost,
            amount_exact=g.price,
            amount=g.price,
            kind=LineKind.CORRECTION,
            period=g.period,
            charge_kind=g.charge_kind,
        )
        for g in late
    ]


def netting_lines(
    *, included: Decimal, cloud: Decimal, savings_removed: Decimal, customer: Customer
) -> tuple[Netting | None, list[InvoiceLine]]:
    """Steps 4-6: the included infrastructure netted against the cloud charges, only when the
    plans include some (or savings were removed, which the netting reports), and the lines
    that state it: what the plans covered, unused infrastructure credited, overage waived."""
    if included <= 0:
        if not savings_removed:
            return None, []
        netting = net_included(
            included=Decimal(0), cloud_charges=cloud, savings_removed=savings_removed,
            customer=customer,
        )  # fmt: skip
        return netting, []
    netting = net_included(
        included=included, cloud_charges=cloud, savings_removed=savings_removed, customer=customer
    )
    lines: list[InvoiceLine] = []
    if netting.covered:
        lines.append(
            _line(
                "Included cloud infrastructure (plans)",
                LineKind.INCLUDED,
                -netting.covered,
                netting=NettingKind.COVERED,
            )
        )
    if netting.underuse_policy is UnderusePolicy.CREDIT and netting.underuse:
        lines.append(
            _line(
                "Unused included infrastructure credited",
                LineKind.INCLUDED,
                -netting.underuse,
                netting=NettingKind.UNDERUSE,
            )
        )
    if netting.overuse_policy is OverusePolicy.WAIVE and netting.overuse:
        lines.append(
            _line(
                "Overage waived", LineKind.INCLUDED, -netting.overuse, netting=NettingKind.OVERUSE
            )
        )
    return netting, lines


@dataclass(frozen=True)
class _TaxOutcome:
    taxes: list[TaxAmount]
    tax: Decimal
    mention: str | None


def _tax_of_lines(
    lines: Sequence[InvoiceLine],
    *,
    customer: Customer,
    entity: InvoicingEntity,
    period: str,
    tax_rates: Sequence[TaxRate],
) -> _TaxOutcome:
    """The tax per rate on the unrounded line amounts, each line taxed by the regime of the
    period it belongs to (one-off charges marked exempt by none), rounded once, and the
    mentions the regimes require."""
    currency = customer.currency
    regimes: dict[str, TaxRegime] = {}

    def regime_of(line_period: str) -> TaxRegime:
        # a line is taxed by the regime of the period it belongs to (its tax point is that
        # period's last day): late usage of December 2020 keeps December 2020's rate
        if line_period not in regimes:
            _, last_day = period_bounds(line_period)
            regimes[line_period] = tax_regime(
                seller_country=entity.address.country,
                buyer_country=customer.address.country,
                buyer_vat_id=customer.vat_id,
                rates=tax_rates,
                tax_point=last_day,
            )
        return regimes[line_period]

    def regime_of_line(line: InvoiceLine) -> TaxRegime:
        if line.kind is LineKind.ONE_OFF and is_tax_exempt(line.provider):
            return EXEMPT_REGIME
        return regime_of(line.period or period)

    regime = regime_of(period)
    taxes = compute_taxes(((regime_of_line(line), line.amount_exact) for line in lines), currency)
    mentions = [regime.mention] if regime.mention else []
    if any(regime_of_line(line) is EXEMPT_REGIME for line in lines):
        mentions.append(EXEMPT_REGIME.mention or "")
    if not taxes:  # an empty invoice still states its tax
        taxes = compute_taxes([(regime, Decimal(0))], currency)
    tax = round_to_minor(sum((t.tax for t in taxes), Decimal(0)), currency)
    return _TaxOutcome(taxes=taxes, tax=tax, mention=" ".join(mentions) or None)


def _parties(entity: InvoicingEntity, customer: Customer) -> tuple[Party, Party]:
    """The seller and the buyer as the invoice names them."""
    seller = Party(
        name=entity.name,
        address_lines=entity.address.lines,
        country=entity.address.country,
        vat_id=entity.vat_id,
        email=str(entity.email),
    )
    buyer = Party(
        name=customer.name,
        address_lines=customer.address.lines,
        country=customer.address.country,
        vat_id=customer.vat_id,
    )
    return seller, buyer


def assemble_invoice(
    *,
    customer: Customer,
    entity: InvoicingEntity,
    period: str,
    groups: list[ChargeGroup],
    plans: Mapping[str, Plan] | None = None,
    tax_rates: Sequence[TaxRate] = (),
) -> InvoiceDocument:
    """Assemble a draft invoice from a customer's charge groups of one period (module docstring).

    The subtotal is the exact sum of every line, rounded once (half-up) to the currency's minor
    units; the printed lines are rounded to add up to it. The tax is computed on the unrounded
    amounts per rate and rounded once; total = subtotal + tax.
    """
    currency = customer.currency

    # step 1: subscription fees; step 2: what they include
    lines, included = subscription_lines(customer, plans or {}, period)

    # step 3: the period's cloud charges; late usage of earlier periods as dated corrections;
    # one-off charges an operator added are lines of their own, never cloud usage
    current, late = _split_cloud_groups(groups, period)
    lines += cloud_lines(current)
    netting, netted = netting_lines(
        included=included,
        cloud=sum((g.price for g in current), Decimal(0)),
        savings_removed=sum((g.savings_removed for g in current), Decimal(0)),
        customer=customer,
    )
    lines += netted + late_usage_lines(late) + one_off_lines(groups, period)

    rounded = allocate_rounded([line.amount_exact for line in lines], currency)
    lines = [line.model_copy(update={"amount": r}) for line, r in zip(lines, rounded, strict=True)]
    subtotal = round_to_minor(sum((line.amount_exact for line in lines), Decimal(0)), currency)
    tax = _tax_of_lines(lines, customer=customer, entity=entity, period=period, tax_rates=tax_rates)
    total = subtotal + tax.tax
    seller, buyer = _parties(entity, customer)
    return InvoiceDocument(
        invoice_id=invoice_id_for(customer.id, period),
        customer_id=customer.id,
        invoicing_entity_id=entity.id,
        period=period,
        currency=currency,
        language=customer.language,
        seller=seller,
        buyer=buyer,
        lines=lines,
        subtotal=subtotal,
        tax=tax.tax,
        total=total,
        outstanding=total,
        payment_methods=entity.payment_methods,
        taxes=tax.taxes,
        tax_mention=tax.mention,
        netting=netting,
    )


# --- the printed invoice -------------------------------------------------------------------


class Section(StrEnum):
    """Where a line is printed: one section per kind of line, in this order."""

    SUBSCRIPTIONS = "subscriptions"
    USAGE = "usage"
    PURCHASES = "purchases"  # purchases and unused commitments
    CREDITS = "credits"  # credits, refunds, provider discounts
    PROVIDER_TAXES = "provider_taxes"
    INCLUDED = "included"  # the included infrastructure netted
    CORRECTIONS = "corrections"  # corrections, adjustments, late usage of earlier periods


_SECTION_OF_KIND = {
    ChargeKind.USAGE: Section.USAGE,
    ChargeKind.PURCHASE: Section.PURCHASES,
    ChargeKind.UNUSED_COMMITMENT: Section.PURCHASES,
    ChargeKind.CREDIT: Section.CREDITS,
    ChargeKind.REFUND: Section.CREDITS,
    ChargeKind.DISCOUNT: Section.CREDITS,
    ChargeKind.TAX: Section.PROVIDER_TAXES,
    ChargeKind.ADJUSTMENT: Section.CORRECTIONS,
    ChargeKind.CORRECTION: Section.CORRECTIONS,
}


def section_of(line: InvoiceLine) -> Section:
    """The section a line is printed in (:class:`Section`)."""
    if line.kind is LineKind.SUBSCRIPTION:
        return Section.SUBSCRIPTIONS
    if line.kind is LineKind.INCLUDED:
        return Section.INCLUDED
    if line.kind is LineKind.CORRECTION:
        return Section.CORRECTIONS
    return _SECTION_OF_KIND[line.charge_kind]


@dataclass(frozen=True)
class SmallLines:
    """Cloud lines of one section each under half a minor unit, printed as one line."""

    lines: int
    charge_count: int
    amount: Decimal
    """The sum of their printed amounts: the printed lines still add up to the subtotal."""


@dataclass(frozen=True)
class PrintedSection:
    """One section of the printed invoice: its lines, and its small lines folded into one."""

    section: Section
    lines: list[InvoiceLine]
    small: SmallLines | None = None


def printed_sections(invoice: InvoiceDocument) -> list[PrintedSection]:
    """The invoice's lines as printed: grouped by :class:`Section` (empty sections left out),
    in the invoice's order within each.

    A cloud line whose exact amount is under half a minor unit would print as 0.00 (or as 0.01
    where the rounding allocation gave it one): two or more of them in a section are printed as
    one line, "other ..., each under 0.01", carrying their printed amounts' sum, so that the
    printed lines still add up to the subtotal. The invoice document keeps every line (the
    usage CSV and the e-invoices list them all).
    """
    grouped: dict[Section, list[InvoiceLine]] = {}
    for line in invoice.lines:
        grouped.setdefault(section_of(line), []).append(line)
    out = []
    for section in Section:
        lines = grouped.get(section)
        if not lines:
            continue
        small = [line for line in lines if _is_small(line, invoice.currency)]
        if len(small) < 2:
            out.append(PrintedSection(section, lines))
            continue
        folded = SmallLines(
            lines=len(small),
            charge_count=sum(line.charge_count for line in small),
            amount=sum((line.amount for line in small), Decimal(0)),
        )
        kept = [line for line in lines if not _is_small(line, invoice.currency)]
        out.append(PrintedSection(section, kept, folded))
    return out


def _is_small(line: InvoiceLine, currency: str) -> bool:
    # only cloud lines are folded: a subscription or a netting line is always named
    cloud = line.kind in (LineKind.USAGE, LineKind.CORRECTION)
    return cloud and round_to_minor(line.amount_exact, currency) == 0
