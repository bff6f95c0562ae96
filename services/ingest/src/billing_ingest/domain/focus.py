"""FOCUS (FinOps Open Cost and Usage Specification) 1.x rows -> normalized usage records.

Pure: takes one row as a dict of column -> string (or None for an empty/NULL cell) and returns a
:class:`UsageRecord` or a :class:`RowProblem` naming the column and the reason.

Rules:
* ``BillingPeriodStart`` gives the billing period (``YYYY-MM``); timestamps without a zone are
  UTC, as FOCUS requires.
* The sub-account that maps to a customer is ``SubAccountId``, or ``BillingAccountId`` when a
  provider leaves it empty.
* The record id is derived from provider, billing account, period and the line's identity (a
  digest of every cell of the row plus its occurrence among identical rows), so loading the same
  file again yields the same ids and downstream services store each line once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from billing_schemas.events import ChargeCategory, LineType, SourceRef, UsageRecord
from billing_schemas.money import MoneyError, minor_units, parse_decimal

REQUIRED_COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ProviderName",
    "ServiceName",
)
"""Columns without which a file is not a FOCUS bill we can use."""

Row = dict[str, str | None]


@dataclass(frozen=True)
class RowProblem:
    """Why a row was rejected: the column at fault (if one) and the reason."""

    column: str | None
    reason: str


class _Reject(Exception):  # noqa: N818 - internal control flow, never escapes this module
    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.problem = RowProblem(column, reason)


def missing_columns(header: list[str]) -> list[str]:
    """The required FOCUS columns a header lacks."""
    present = set(header)
    return [c for c in REQUIRED_COLUMNS if c not in present]


def _required(row: Row, column: str) -> str:
    value = row.get(column)
    if value is None or not value.strip():
        raise _Reject(column, f"{column} is empty; a value is required")
    return value.strip()


def _optional(row: Row, column: str) -> str | None:
    value = row.get(column)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _amount(row: Row, column: str, *, required: bool) -> Decimal | None:
    value = _required(row, column) if required else _optional(row, column)
    if value is None:
        return None
    try:
        return parse_decimal(value)
    except MoneyError:
        raise _Reject(column, f"{column} {value!r} is not a decimal number") from None


def _timestamp(row: Row, column: str) -> datetime:
    value = _required(row, column)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _Reject(column, f"{column} {value!r} is not a date-time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _currency(row: Row) -> str:
    code = _required(row, "BillingCurrency").upper()
    try:
        minor_units(code)
    except MoneyError:
        raise _Reject("BillingCurrency", f"{code!r} is not an ISO 4217 currency code") from None
    return code


_CATEGORIES = {c.value: c for c in ChargeCategory}


def _category(row: Row) -> ChargeCategory:
    value = _required(row, "ChargeCategory")
    try:
        return _CATEGORIES[value.lower()]
    except KeyError:
        allowed = ", ".join(c.value.capitalize() for c in ChargeCategory)
        raise _Reject("ChargeCategory", f"{value!r} is not one of {allowed}") from None


def _line_type(category: ChargeCategory, row: Row) -> LineType:
    if category is ChargeCategory.USAGE:
        used = (_optional(row, "CommitmentDiscountStatus") or "").lower() == "used"
        return LineType.COMMITMENT_COVERED if used else LineType.ON_DEMAND
    return {
        ChargeCategory.PURCHASE: LineType.COMMITMENT_FEE,
        ChargeCategory.CREDIT: LineType.CREDIT,
        ChargeCategory.TAX: LineType.TAX,
        ChargeCategory.ADJUSTMENT: LineType.ADJUSTMENT,
    }[category]


def row_digest(row: Row) -> str:
    """Digest of every cell of the row, with its column name (column order does not matter)."""
    text = "\x1e".join(f"{column}\x1f{row[column] or ''}" for column in sorted(row))
    return hashlib.sha256(text.encode()).hexdigest()


def record_id_for(
    provider: str, billing_account: str, period: str, digest: str, occurrence: int
) -> str:
    """The deterministic usage record id: the line's identity is its content and, for rows
    repeated word for word in one bill, which repetition it is."""
    key = f"{provider}\x1f{billing_account}\x1f{period}\x1f{digest}\x1f{occurrence}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _tags(row: Row) -> dict[str, str]:
    raw = _optional(row, "Tags")
    if raw is None:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        raise _Reject("Tags", "Tags is not a JSON object") from None
    if not isinstance(parsed, dict):
        raise _Reject("Tags", "Tags is not a JSON object")
    return {str(k): str(v) for k, v in parsed.items()}


def focus_row_to_record(
    row: Row, *, bill_id: str, file_name: str, row_number: int, digest: str, occurrence: int
) -> UsageRecord | RowProblem:
    """Map one FOCUS row to a usage record, or say which column is wrong and why."""
    try:
        provider = _required(row, "ProviderName")
        billing_account = _required(row, "BillingAccountId")
        period_start = _timestamp(row, "BillingPeriodStart")
        period = f"{period_start.year:04d}-{period_start.month:02d}"
        category = _category(row)
        billed = _amount(row, "BilledCost", required=True)
        assert billed is not None  # required=True never returns None
        return UsageRecord(
            record_id=record_id_for(provider, billing_account, period, digest, occurrence),
            bill_id=bill_id,
            source_ref=SourceRef(file=file_name, row=row_number),
            provider=provider,
            billing_account_id=billing_account,
            sub_account_id=_optional(row, "SubAccountId") or billing_account,
            sub_account_name=_optional(row, "SubAccountName"),
            billing_period=period,
            charge_period_start=_timestamp(row, "ChargePeriodStart"),
            charge_period_end=_timestamp(row, "ChargePeriodEnd"),
            charge_category=category,
            line_type=_line_type(category, row),
            service_name=_required(row, "ServiceName"),
            service_category=_optional(row, "ServiceCategory"),
            sku_id=_optional(row, "SkuId"),
            sku_price_id=_optional(row, "SkuPriceId"),
            description=_optional(row, "ChargeDescription"),
            region=_optional(row, "RegionId"),
            resource_id=_optional(row, "ResourceId"),
            commitment_id=_optional(row, "CommitmentDiscountId"),
            pricing_quantity=_amount(row, "PricingQuantity", required=False),
            pricing_unit=_optional(row, "PricingUnit"),
            consumed_quantity=_amount(row, "ConsumedQuantity", required=False),
            consumed_unit=_optional(row, "ConsumedUnit"),
            currency=_currency(row),
            list_cost=_amount(row, "ListCost", required=False),
            billed_cost=billed,
            effective_cost=_amount(row, "EffectiveCost", required=False),
            tags=_tags(row),
        )
    except _Reject as exc:
        return exc.problem
