"""AWS Cost and Usage Report rows -> normalized usage records (pure).

Both the legacy CUR (``lineItem/UnblendedCost``) and CUR 2.0 (``line_item_unblended_cost``) are
read by one mapper over two column maps.

Rules:
* The billed cost is the unblended cost; the public on-demand cost is
  ``pricing/publicOnDemandCost``; the effective cost is the reservation's or savings plan's
  effective cost on covered usage, else the unblended cost.
* ``lineItem/LineItemType`` decides the charge category and the line type (table below). A type
  AWS adds later is rejected with its name rather than guessed.
* The commitment (RI or savings plan ARN) belongs to the account in its ARN: the payer account
  when that is the payer (``commitment_owner = "payer"``), else the usage account itself.
* Usage quantities cannot be negative on usage lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from billing_ingest.domain.cells import (
    MapsRows,
    Row,
    RowRejected,
    amount,
    currency,
    optional,
    period_of,
    record_id_for,
    required,
    timestamp,
)
from billing_schemas.events import ChargeCategory, LineType, SourceRef, UsageRecord

PROVIDER = "AWS"

LINE_ITEM_TYPES: dict[str, tuple[ChargeCategory, LineType]] = {
    "Usage": (ChargeCategory.USAGE, LineType.ON_DEMAND),
    "DiscountedUsage": (ChargeCategory.USAGE, LineType.COMMITMENT_COVERED),
    "SavingsPlanCoveredUsage": (ChargeCategory.USAGE, LineType.COMMITMENT_COVERED),
    "SavingsPlanNegation": (ChargeCategory.USAGE, LineType.COMMITMENT_NEGATION),
    "RIFee": (ChargeCategory.PURCHASE, LineType.COMMITMENT_FEE),
    "Fee": (ChargeCategory.PURCHASE, LineType.COMMITMENT_FEE),
    "SavingsPlanRecurringFee": (ChargeCategory.PURCHASE, LineType.COMMITMENT_FEE),
    "SavingsPlanUpfrontFee": (ChargeCategory.PURCHASE, LineType.COMMITMENT_FEE),
    "Credit": (ChargeCategory.CREDIT, LineType.CREDIT),
    "Refund": (ChargeCategory.CREDIT, LineType.REFUND),
    "Tax": (ChargeCategory.TAX, LineType.TAX),
    "EdpDiscount": (ChargeCategory.CREDIT, LineType.DISCOUNT),
    "SppDiscount": (ChargeCategory.CREDIT, LineType.DISCOUNT),
    "BundledDiscount": (ChargeCategory.CREDIT, LineType.DISCOUNT),
    "PrivateRateDiscount": (ChargeCategory.CREDIT, LineType.DISCOUNT),
}


@dataclass(frozen=True)
class CurColumns(MapsRows):
    """Where each field is in one CUR version."""

    payer: str
    period_start: str
    account: str
    line_item_type: str
    usage_start: str
    usage_end: str
    product_code: str
    currency: str
    unblended_cost: str
    usage_amount: str
    usage_type: str
    description: str
    resource_id: str
    region: str
    product_name: str
    public_on_demand_cost: str
    pricing_unit: str
    reservation_arn: str
    reservation_effective_cost: str
    savings_plan_arn: str
    savings_plan_effective_cost: str
    tags: str
    """Legacy: the prefix of one column per tag; CUR 2.0: one JSON map column."""
    tags_are_columns: bool

    def required_columns(self) -> tuple[str, ...]:
        """Columns a file of this version cannot do without."""
        return (
            self.payer,
            self.period_start,
            self.account,
            self.line_item_type,
            self.usage_start,
            self.usage_end,
            self.product_code,
            self.currency,
            self.unblended_cost,
        )

    def _record(
        self, row: Row, source: SourceRef, bill_id: str, digest: str, occurrence: int
    ) -> UsageRecord:
        payer = required(row, self.payer)
        account = required(row, self.account)
        period = period_of(timestamp(row, self.period_start))
        kind = required(row, self.line_item_type)
        if kind not in LINE_ITEM_TYPES:
            raise RowRejected(self.line_item_type, f"line item type {kind!r} is not one we rate")
        category, line_type = LINE_ITEM_TYPES[kind]
        quantity = amount(row, self.usage_amount, is_required=False)
        if quantity is not None and quantity < 0 and category is ChargeCategory.USAGE:
            msg = f"{self.usage_amount} {quantity} is negative on a {kind} line"
            raise RowRejected(self.usage_amount, msg)
        billed = amount(row, self.unblended_cost, is_required=True)
        assert billed is not None  # is_required=True never returns None
        commitment = optional(row, self.reservation_arn) or optional(row, self.savings_plan_arn)
        effective = billed
        if line_type is LineType.COMMITMENT_COVERED:
            covered = amount(row, self.reservation_effective_cost, is_required=False)
            covered = (
                covered
                if covered is not None
                else amount(row, self.savings_plan_effective_cost, is_required=False)
            )
            effective = covered if covered is not None else billed
        on_demand = amount(row, self.public_on_demand_cost, is_required=False)
        product_code = required(row, self.product_code)
        return UsageRecord(
            record_id=record_id_for(PROVIDER, payer, period, digest, occurrence),
            bill_id=bill_id,
            source_ref=source,
            provider=PROVIDER,
            billing_account_id=payer,
            sub_account_id=account,
            billing_period=period,
            charge_period_start=timestamp(row, self.usage_start),
            charge_period_end=timestamp(row, self.usage_end),
            charge_category=category,
            line_type=line_type,
            service_name=optional(row, self.product_name) or product_code,
            service_category=product_code,
            sku_id=optional(row, self.usage_type),
            description=optional(row, self.description),
            region=optional(row, self.region),
            resource_id=optional(row, self.resource_id),
            commitment_id=commitment,
            commitment_owner=None if commitment is None else _owner(commitment, payer),
            pricing_quantity=quantity,
            pricing_unit=optional(row, self.pricing_unit),
            consumed_quantity=quantity,
            consumed_unit=optional(row, self.pricing_unit),
            currency=currency(row, self.currency),
            list_cost=on_demand,
            on_demand_cost=on_demand,
            billed_cost=billed,
            effective_cost=effective,
            tags=self._tags(row),
        )

    def _tags(self, row: Row) -> dict[str, str]:
        if self.tags_are_columns:
            return {
                column.removeprefix(self.tags): value
                for column, value in row.items()
                if column.startswith(self.tags) and value
            }
        raw = optional(row, self.tags)
        if raw is None:
            return {}
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            raise RowRejected(self.tags, f"{self.tags} is not a JSON object") from None
        if not isinstance(parsed, dict):
            raise RowRejected(self.tags, f"{self.tags} is not a JSON object")
        return {str(k): str(v) for k, v in parsed.items()}


def _owner(arn: str, payer: str) -> str:
    """``payer`` when the commitment's ARN names the payer account, else ``account``."""
    parts = arn.split(":")
    owner = parts[4] if len(parts) > 4 else ""
    return "payer" if owner == payer else "account"


LEGACY = CurColumns(
    payer="bill/PayerAccountId",
    period_start="bill/BillingPeriodStartDate",
    account="lineItem/UsageAccountId",
    line_item_type="lineItem/LineItemType",
    usage_start="lineItem/UsageStartDate",
    usage_end="lineItem/UsageEndDate",
    product_code="lineItem/ProductCode",
    currency="lineItem/CurrencyCode",
    unblended_cost="lineItem/UnblendedCost",
    usage_amount="lineItem/UsageAmount",
    usage_type="lineItem/UsageType",
    description="lineItem/LineItemDescription",
    resource_id="lineItem/ResourceId",
    region="product/region",
    product_name="product/ProductName",
    public_on_demand_cost="pricing/publicOnDemandCost",
    pricing_unit="pricing/unit",
    reservation_arn="reservation/ReservationARN",
    reservation_effective_cost="reservation/EffectiveCost",
    savings_plan_arn="savingsPlan/SavingsPlanARN",
    savings_plan_effective_cost="savingsPlan/SavingsPlanEffectiveCost",
    tags="resourceTags/",
    tags_are_columns=True,
)

CUR2 = CurColumns(
    payer="bill_payer_account_id",
    period_start="bill_billing_period_start_date",
    account="line_item_usage_account_id",
    line_item_type="line_item_line_item_type",
    usage_start="line_item_usage_start_date",
    usage_end="line_item_usage_end_date",
    product_code="line_item_product_code",
    currency="line_item_currency_code",
    unblended_cost="line_item_unblended_cost",
    usage_amount="line_item_usage_amount",
    usage_type="line_item_usage_type",
    description="line_item_line_item_description",
    resource_id="line_item_resource_id",
    region="product_region_code",
    product_name="product_product_name",
    public_on_demand_cost="pricing_public_on_demand_cost",
    pricing_unit="pricing_unit",
    reservation_arn="reservation_reservation_a_r_n",
    reservation_effective_cost="reservation_effective_cost",
    savings_plan_arn="savings_plan_savings_plan_a_r_n",
    savings_plan_effective_cost="savings_plan_savings_plan_effective_cost",
    tags="resource_tags",
    tags_are_columns=False,
)
