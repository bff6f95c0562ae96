"""Azure cost details rows (Enterprise Agreement and Microsoft Customer Agreement exports)
-> usage records (pure).

One mapper over two column maps: the EA export names its columns in PascalCase
(``CostInBillingCurrency``), the MCA export in camelCase (``costInBillingCurrency``); a few
columns are spelled either way, so each field lists its spellings and the first one the row has
is read.

Rules:
* The billing account is ``BillingAccountId``; the sub-account is the subscription (the
  billing account on lines of no subscription, such as rounding adjustments).
* The billing period is the month of ``BillingPeriodStartDate``. Dates are ``MM/DD/YYYY`` (as
  the exports write them) or ISO 8601; a line covers its ``Date``, one day (UTC).
* The billed cost is ``CostInBillingCurrency``, in ``BillingCurrency`` (EA: also spelled
  ``BillingCurrencyCode``).
* ``ChargeType`` decides the category; on usage, ``PricingModel`` ``Reservation`` or
  ``SavingsPlan`` makes the line commitment-covered with ``ReservationId`` (else ``BenefitId``)
  as the commitment. A ``Purchase`` of a reservation or savings plan is a commitment fee, any
  other purchase (Marketplace, support) a plain purchase. ``UnusedReservation`` and
  ``UnusedSavingsPlan`` are the idle part of a commitment: commitment fees. A charge type not in
  the table is rejected by name.
* The on-demand cost of a usage line is ``paygCostInBillingCurrency`` when the export has it,
  else ``PayGPrice x Quantity``. Azure's ids do not say who bought a reservation, so the
  commitment's owner is left unknown.
* Quantities cannot be negative on usage lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing_ingest.domain.cells import (
    MapsRows,
    Row,
    RowRejected,
    amount,
    currency,
    not_negative,
    optional,
    period_of,
    record_id_for,
    required,
)
from billing_schemas.events import ChargeCategory, LineType, SourceRef, UsageRecord

PROVIDER = "Microsoft"

CHARGE_TYPES: dict[str, tuple[ChargeCategory, LineType]] = {
    "usage": (ChargeCategory.USAGE, LineType.ON_DEMAND),
    "purchase": (ChargeCategory.PURCHASE, LineType.OTHER),
    "refund": (ChargeCategory.CREDIT, LineType.REFUND),
    "roundingadjustment": (ChargeCategory.ADJUSTMENT, LineType.ADJUSTMENT),
    "adjustment": (ChargeCategory.ADJUSTMENT, LineType.ADJUSTMENT),
    "unusedreservation": (ChargeCategory.USAGE, LineType.COMMITMENT_FEE),
    "unusedsavingsplan": (ChargeCategory.USAGE, LineType.COMMITMENT_FEE),
    "tax": (ChargeCategory.TAX, LineType.TAX),
}

COMMITMENT_MODELS = {"reservation", "savingsplan"}

Names = tuple[str, ...]


def _pick(row: Row, names: Names) -> str:
    """The first spelling of a column the row has (the first one if it has none)."""
    return next((n for n in names if n in row), names[0])


@dataclass(frozen=True)
class AzureColumns(MapsRows):
    """Where each field is in one Azure export (each field: its spellings)."""

    billing_account: Names
    billing_period_start: Names
    subscription: Names
    subscription_name: Names
    date: Names
    charge_type: Names
    cost: Names
    currency: Names
    pricing_model: Names
    quantity: Names
    unit: Names
    meter_id: Names
    meter_name: Names
    meter_category: Names
    service_family: Names
    region: Names
    resource_id: Names
    reservation_id: Names
    benefit_id: Names
    payg_price: Names
    payg_cost: Names
    tags: Names
    marker: Names = ()
    """A column only this export has (detection), required with the others."""

    def _required(self) -> tuple[Names, ...]:
        return (
            self.billing_account,
            self.billing_period_start,
            self.subscription,
            self.date,
            self.charge_type,
            self.cost,
            *((self.marker,) if self.marker else ()),
        )

    def required_columns(self) -> tuple[str, ...]:
        """Required columns with one spelling."""
        return tuple(g[0] for g in self._required() if len(g) == 1)

    def one_of(self) -> tuple[Names, ...]:
        """Required columns with several spellings (the currency is always among them)."""
        return (*(g for g in self._required() if len(g) > 1), self.currency)

    def _cell(self, row: Row, names: Names) -> str | None:
        return optional(row, _pick(row, names))

    def _record(
        self, row: Row, source: SourceRef, bill_id: str, digest: str, occurrence: int
    ) -> UsageRecord:
        account = required(row, _pick(row, self.billing_account))
        period = period_of(_date(row, _pick(row, self.billing_period_start)))
        # rounding adjustments belong to no subscription: the billing account's then
        subscription = self._cell(row, self.subscription) or account
        day = _date(row, _pick(row, self.date))
        category, line_type, commitment = self._kind(row)
        quantity_column = _pick(row, self.quantity)
        quantity = amount(row, quantity_column, is_required=False)
        if line_type in _USAGE_LINES:
            not_negative(quantity, quantity_column, " on a usage line")
        billed = amount(row, _pick(row, self.cost), is_required=True)
        assert billed is not None  # is_required=True never returns None
        on_demand = self._on_demand(row, quantity) if line_type in _USAGE_LINES else None
        return UsageRecord(
            record_id=record_id_for(PROVIDER, account, period, digest, occurrence),
            bill_id=bill_id,
            source_ref=source,
            provider=PROVIDER,
            billing_account_id=account,
            sub_account_id=subscription,
            sub_account_name=self._cell(row, self.subscription_name),
            billing_period=period,
            charge_period_start=day,
            charge_period_end=day + timedelta(days=1),
            charge_category=category,
            line_type=line_type,
            service_name=self._cell(row, self.meter_category) or "Azure",
            service_category=self._cell(row, self.service_family),
            sku_id=self._cell(row, self.meter_id),
            description=self._cell(row, self.meter_name),
            region=self._cell(row, self.region),
            resource_id=self._cell(row, self.resource_id),
            commitment_id=commitment,
            pricing_quantity=quantity,
            pricing_unit=self._cell(row, self.unit),
            consumed_quantity=quantity,
            consumed_unit=self._cell(row, self.unit),
            currency=currency(row, _pick(row, self.currency)),
            list_cost=on_demand,
            on_demand_cost=on_demand,
            billed_cost=billed,
            effective_cost=billed,
            tags=_tags(row, _pick(row, self.tags)),
        )

    def _kind(self, row: Row) -> tuple[ChargeCategory, LineType, str | None]:
        column = _pick(row, self.charge_type)
        kind = required(row, column)
        if kind.lower() not in CHARGE_TYPES:
            raise RowRejected(column, f"charge type {kind!r} is not one we rate")
        category, line_type = CHARGE_TYPES[kind.lower()]
        model = (self._cell(row, self.pricing_model) or "").lower()
        commitment = self._cell(row, self.reservation_id) or self._cell(row, self.benefit_id)
        if category is ChargeCategory.USAGE and line_type is LineType.ON_DEMAND:
            if model in COMMITMENT_MODELS:
                return category, LineType.COMMITMENT_COVERED, commitment
            return category, line_type, None
        if category is ChargeCategory.PURCHASE and model in COMMITMENT_MODELS:
            return category, LineType.COMMITMENT_FEE, commitment
        return category, line_type, commitment

    def _on_demand(self, row: Row, quantity: Decimal | None) -> Decimal | None:
        payg_cost = amount(row, _pick(row, self.payg_cost), is_required=False)
        if payg_cost is not None:
            return payg_cost
        price = amount(row, _pick(row, self.payg_price), is_required=False)
        if price is None or quantity is None:
            return None
        return price * quantity


_USAGE_LINES = {LineType.ON_DEMAND, LineType.COMMITMENT_COVERED}


def _date(row: Row, column: str) -> datetime:
    """``MM/DD/YYYY`` (the exports' form) or an ISO 8601 date or date-time, as UTC."""
    value = required(row, column)
    try:
        if "/" in value:
            parsed = datetime.strptime(value.split()[0], "%m/%d/%Y")  # noqa: DTZ007 - made UTC
        else:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        msg = f"{column} {value!r} is not a date (MM/DD/YYYY or ISO 8601)"
        raise RowRejected(column, msg) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _tags(row: Row, column: str) -> dict[str, str]:
    """Tags as a JSON object, or as the EA export writes them: its members without braces."""
    raw = optional(row, column)
    if raw is None:
        return {}
    text = raw if raw.startswith("{") else "{" + raw + "}"
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        raise RowRejected(column, f"{column} is not a JSON object") from None
    if not isinstance(parsed, dict):
        raise RowRejected(column, f"{column} is not a JSON object")
    return {str(k): str(v) for k, v in parsed.items()}


EA = AzureColumns(
    billing_account=("BillingAccountId",),
    billing_period_start=("BillingPeriodStartDate",),
    subscription=("SubscriptionId",),
    subscription_name=("SubscriptionName",),
    date=("Date",),
    charge_type=("ChargeType",),
    cost=("CostInBillingCurrency",),
    currency=("BillingCurrency", "BillingCurrencyCode"),
    pricing_model=("PricingModel",),
    quantity=("Quantity",),
    unit=("UnitOfMeasure",),
    meter_id=("MeterId",),
    meter_name=("MeterName",),
    meter_category=("MeterCategory",),
    service_family=("ServiceFamily",),
    region=("ResourceLocation", "MeterRegion"),
    resource_id=("ResourceId",),
    reservation_id=("ReservationId",),
    benefit_id=("BenefitId", "benefitId"),
    payg_price=("PayGPrice",),
    payg_cost=("PaygCostInBillingCurrency",),
    tags=("Tags",),
)

MCA = AzureColumns(
    billing_account=("billingAccountId",),
    billing_period_start=("billingPeriodStartDate",),
    subscription=("subscriptionId", "SubscriptionId"),
    subscription_name=("subscriptionName", "SubscriptionName"),
    date=("date",),
    charge_type=("chargeType",),
    cost=("costInBillingCurrency",),
    currency=("billingCurrency", "billingCurrencyCode"),
    pricing_model=("pricingModel",),
    quantity=("quantity",),
    unit=("unitOfMeasure",),
    meter_id=("meterId",),
    meter_name=("meterName",),
    meter_category=("meterCategory",),
    service_family=("serviceFamily",),
    region=("resourceLocation", "meterRegion"),
    resource_id=("ResourceId", "resourceId"),
    reservation_id=("reservationId",),
    benefit_id=("benefitId",),
    payg_price=("PayGPrice", "paygPrice"),
    payg_cost=("paygCostInBillingCurrency",),
    tags=("tags",),
    marker=("billingProfileId",),
)
