"""Azure cost details rows (Enterprise Agreement, pay-as-you-go and Microsoft Customer
Agreement exports) -> usage records (pure).

One mapper, one column map. Microsoft's field reference ("Understand cost details fields")
gives each field its names: the current one and the older ones some exports still write
(``Cost`` and ``CostInBillingCurrency``, ``Currency`` / ``BillingCurrency`` /
``BillingCurrencyCode``, ``ConsumedQuantity`` for ``Quantity``...), and the exports write them
in PascalCase (EA, pay-as-you-go) or camelCase (MCA): "some fields might differ in casing and
spacing between account types". So column names are matched without regard to case, each
field lists its names, and the first one the header has is read (resolved once per header).

Which agreement a file is (``azure-ea`` or ``azure-mca``) is told by the columns only one of
them has (EA and pay-as-you-go: ``AccountName``, ``AccountOwnerId``, ``Cost``, ``Currency``,
``PartNumber``; MCA: ``CostInPricingCurrency``, ``ExchangeRatePricingToBilling``,
``PricingCurrency``, ``ProductId``, ``PublisherId``, ``PreviousInvoiceId``,
``ServicePeriodStartDate``), else by the naming style (camelCase is MCA's). The mapping is the
same for both.

Rules:
* The billing account is ``BillingAccountId``; the sub-account is the subscription (the
  billing account on lines of no subscription, such as rounding adjustments).
* The billing period is the month of ``BillingPeriodStartDate``. Dates are ``MM/DD/YYYY`` (as
  the exports write them) or ISO 8601; a line covers its ``Date``, one day (UTC).
* The billed cost is ``CostInBillingCurrency`` (EA and pay-as-you-go: also ``Cost``), in
  ``BillingCurrency`` (also ``BillingCurrencyCode``, ``Currency``).
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
from functools import lru_cache

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


@dataclass(frozen=True)
class AzureColumns(MapsRows):
    """Where each field is in an Azure export (each field: its names, matched without case).

    ``agreement`` names the export this map detects; ``only_columns`` are columns only that
    agreement's exports have, ``other_columns`` those only the other's have (detection).
    """

    agreement: str
    camel_case: bool
    only_columns: Names
    other_columns: Names
    billing_account: Names = ("BillingAccountId",)
    billing_period_start: Names = ("BillingPeriodStartDate",)
    subscription: Names = ("SubscriptionId",)
    subscription_name: Names = ("SubscriptionName",)
    date: Names = ("Date", "UsageDate")
    charge_type: Names = ("ChargeType",)
    cost: Names = ("CostInBillingCurrency", "Cost")
    currency: Names = ("BillingCurrency", "BillingCurrencyCode", "Currency")
    pricing_model: Names = ("PricingModel",)
    quantity: Names = ("Quantity", "ConsumedQuantity")
    unit: Names = ("UnitOfMeasure", "Unit")
    meter_id: Names = ("MeterId",)
    meter_name: Names = ("MeterName",)
    meter_category: Names = ("MeterCategory",)
    service_family: Names = ("ServiceFamily",)
    region: Names = ("ResourceLocation", "MeterRegion")
    resource_id: Names = ("ResourceId", "InstanceId")
    reservation_id: Names = ("ReservationId",)
    benefit_id: Names = ("BenefitId",)
    payg_price: Names = ("PayGPrice",)
    payg_cost: Names = ("PaygCostInBillingCurrency",)
    tags: Names = ("Tags",)

    def _required(self) -> tuple[Names, ...]:
        return (
            self.billing_account,
            self.billing_period_start,
            self.subscription,
            self.date,
            self.charge_type,
            self.cost,
            self.currency,
        )

    def missing(self, header: list[str]) -> list[str]:
        """Required fields the header has under none of their names (``A or B``)."""
        present = {name.lower() for name in header}
        return [
            " or ".join(names)
            for names in self._required()
            if not any(n.lower() in present for n in names)
        ]

    def fits(self, header: list[str]) -> bool:
        """Whether the header is this agreement's export (see the module docstring)."""
        if self.missing(header):
            return False
        present = {name.lower() for name in header}
        if any(n.lower() in present for n in self.only_columns):
            return True
        if any(n.lower() in present for n in self.other_columns):
            return False
        account = next(n for n in header if n.lower() == self.billing_account[0].lower())
        return account[0].islower() == self.camel_case

    def _cell(self, row: Row, names: Names) -> str | None:
        column = _columns(tuple(row)).get(names[0].lower())
        return None if column is None else optional(row, column)

    def _name(self, row: Row, names: Names) -> str:
        """The row's column for the field, or its first name (for a message) if it has none."""
        return _columns(tuple(row)).get(names[0].lower()) or names[0]

    def _record(
        self, row: Row, source: SourceRef, bill_id: str, digest: str, occurrence: int
    ) -> UsageRecord:
        account = required(row, self._name(row, self.billing_account))
        period = period_of(_date(row, self._name(row, self.billing_period_start)))
        # rounding adjustments belong to no subscription: the billing account's then
        subscription = self._cell(row, self.subscription) or account
        day = _date(row, self._name(row, self.date))
        category, line_type, commitment = self._kind(row)
        quantity_column = self._name(row, self.quantity)
        quantity = amount(row, quantity_column, is_required=False)
        if line_type in _USAGE_LINES:
            not_negative(quantity, quantity_column, " on a usage line")
        billed = amount(row, self._name(row, self.cost), is_required=True)
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
            currency=currency(row, self._name(row, self.currency)),
            list_cost=on_demand,
            on_demand_cost=on_demand,
            billed_cost=billed,
            effective_cost=billed,
            tags=_tags(row, self._name(row, self.tags)),
        )

    def _kind(self, row: Row) -> tuple[ChargeCategory, LineType, str | None]:
        column = self._name(row, self.charge_type)
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
        payg_cost = amount(row, self._name(row, self.payg_cost), is_required=False)
        if payg_cost is not None:
            return payg_cost
        price = amount(row, self._name(row, self.payg_price), is_required=False)
        if price is None or quantity is None:
            return None
        return price * quantity


_FIELDS = (
    "billing_account",
    "billing_period_start",
    "subscription",
    "subscription_name",
    "date",
    "charge_type",
    "cost",
    "currency",
    "pricing_model",
    "quantity",
    "unit",
    "meter_id",
    "meter_name",
    "meter_category",
    "service_family",
    "region",
    "resource_id",
    "reservation_id",
    "benefit_id",
    "payg_price",
    "payg_cost",
    "tags",
)


@lru_cache(maxsize=64)
def _columns(header: tuple[str, ...]) -> dict[str, str]:
    """For a header: each field's first name (lower-cased) -> the header's column for it
    (the first of the field's names the header has, whatever its case)."""
    by_lower: dict[str, str] = {}
    for name in header:
        by_lower.setdefault(name.lower(), name)
    found: dict[str, str] = {}
    for field in _FIELDS:
        names: Names = getattr(_NAMES, field)
        column = next((by_lower[n.lower()] for n in names if n.lower() in by_lower), None)
        if column is not None:
            found[names[0].lower()] = column
    return found


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


_EA_ONLY = ("AccountName", "AccountOwnerId", "Cost", "Currency", "PartNumber")
_MCA_ONLY = (
    "CostInPricingCurrency",
    "ExchangeRatePricingToBilling",
    "PricingCurrency",
    "ProductId",
    "PublisherId",
    "PreviousInvoiceId",
    "ServicePeriodStartDate",
)

EA = AzureColumns("azure-ea", camel_case=False, only_columns=_EA_ONLY, other_columns=_MCA_ONLY)
"""Enterprise Agreement and pay-as-you-go (Microsoft Online Services Program) exports."""

MCA = AzureColumns("azure-mca", camel_case=True, only_columns=_MCA_ONLY, other_columns=_EA_ONLY)
"""Microsoft Customer Agreement (and Partner Agreement) exports."""

_NAMES = EA  # the field names are the same for both
