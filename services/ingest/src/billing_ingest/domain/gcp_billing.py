"""Google Cloud billing export (BigQuery standard usage cost schema) rows -> usage records (pure).

The same mapper reads the CSV export (nested fields flattened to dotted column names such as
``service.description``, the ``credits`` and ``labels`` arrays as JSON text) and the JSON-lines
export (flattened to the same names by the reader, see adapters/jsonl_reader.py).

Rules:
* The billing account is ``billing_account_id``; the sub-account is ``project.id`` (lines
  without a project, such as rounding errors, fall back to the billing account).
* The billing period is ``invoice.month`` (``YYYYMM``), not the usage dates: Google invoices
  late usage in the month it was reported.
* Credits are netted, not split into records of their own: ``billed_cost = cost +
  sum(credits.amount)`` (credit amounts are negative), ``on_demand_cost = cost`` (before
  credits), ``list_cost = cost_at_list`` when the export has it, and the credits themselves
  are kept on the record (``UsageRecord.credits``) so that rating can tell which ones to pass on.
* ``cost_type`` decides the category: ``regular`` (or empty) is usage, ``tax`` is tax,
  ``adjustment`` and ``rounding error`` are adjustments; another value is rejected by name.
* A regular line whose SKU description starts with ``Commitment`` is a committed-use discount
  fee; a regular line carrying a committed-use-discount credit is commitment-covered, with the
  credit's id as the commitment. Spend-based commitments are bought on the billing account
  (``commitment_owner = "payer"``); a resource-based commitment's credit does not say which
  project bought it (owner unknown).
* Usage amounts cannot be negative on regular lines.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from billing_ingest.domain.cells import (
    Row,
    RowProblem,
    RowRejected,
    amount,
    currency,
    json_cell,
    not_negative,
    optional,
    record_id_for,
    required,
    timestamp,
)
from billing_schemas.events import (
    AppliedCredit,
    ChargeCategory,
    LineType,
    SourceRef,
    UsageRecord,
)
from billing_schemas.money import MoneyError, parse_decimal

PROVIDER = "Google Cloud"

REQUIRED_COLUMNS = (
    "billing_account_id",
    "service.description",
    "usage_start_time",
    "usage_end_time",
    "cost",
    "currency",
    "invoice.month",
)
"""Columns without which a file is not a Google Cloud billing export we can use."""

DECIMAL_FIELDS = (
    "cost",
    "cost_at_list",
    "currency_conversion_rate",
    "usage.amount",
    "usage.amount_in_pricing_units",
    "price.effective_price",
    "price.tier_start_amount",
    "price.pricing_unit_quantity",
    "credits[].amount",
)
"""Numeric fields of the JSON export the reader must keep as exact decimals, never floats
(``[]`` marks a field of the objects of an array)."""

COST_TYPES: dict[str, tuple[ChargeCategory, LineType]] = {
    "regular": (ChargeCategory.USAGE, LineType.ON_DEMAND),
    "tax": (ChargeCategory.TAX, LineType.TAX),
    "adjustment": (ChargeCategory.ADJUSTMENT, LineType.ADJUSTMENT),
    "rounding error": (ChargeCategory.ADJUSTMENT, LineType.ADJUSTMENT),
}

COMMITTED_USE_CREDITS = {
    "COMMITTED_USAGE_DISCOUNT": None,  # resource-based: the buying project is not named
    "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE": "payer",  # spend-based: bought on the account
}


def _period(row: Row) -> str:
    value = required(row, "invoice.month")
    if len(value) != 6 or not value.isdigit() or not 1 <= int(value[4:]) <= 12:
        raise RowRejected("invoice.month", f"invoice.month {value!r} is not a YYYYMM month")
    return f"{value[:4]}-{value[4:]}"


def _credits(row: Row) -> list[AppliedCredit]:
    parsed = json_cell(row, "credits")
    if parsed is None:
        return []
    if not isinstance(parsed, list):
        raise RowRejected("credits", "credits is not a JSON array")
    credits = []
    for index, item in enumerate(parsed):
        if not isinstance(item, dict) or "amount" not in item:
            raise RowRejected("credits", f"credits[{index}] is not an object with an amount")
        try:
            value = parse_decimal(item["amount"])
        except MoneyError:
            msg = f"credits[{index}].amount {item['amount']!r} is not a decimal number"
            raise RowRejected("credits", msg) from None

        def text(key: str, entry: dict[str, object] = item) -> str | None:
            found = entry.get(key)
            return None if found is None else str(found)

        credits.append(
            AppliedCredit(name=text("name"), type=text("type"), credit_id=text("id"), amount=value)
        )
    return credits


def _labels(row: Row) -> dict[str, str]:
    """``labels`` as BigQuery writes it (an array of key/value objects) or as a JSON object."""
    parsed = json_cell(row, "labels")
    if parsed is None:
        return {}
    if isinstance(parsed, dict):
        return {str(k): str(v) for k, v in parsed.items()}
    if isinstance(parsed, list) and all(isinstance(i, dict) and "key" in i for i in parsed):
        return {str(i["key"]): str(i.get("value") or "") for i in parsed}
    raise RowRejected("labels", "labels is neither a key/value array nor a JSON object")


def _kind(
    row: Row, credits: list[AppliedCredit]
) -> tuple[ChargeCategory, LineType, str | None, Literal["payer", "account"] | None]:
    """Category, line type, commitment id and its owner of one line."""
    cost_type = (optional(row, "cost_type") or "regular").lower()
    if cost_type not in COST_TYPES:
        raise RowRejected("cost_type", f"cost type {cost_type!r} is not one we rate")
    category, line_type = COST_TYPES[cost_type]
    if category is not ChargeCategory.USAGE:
        return category, line_type, None, None
    if (optional(row, "sku.description") or "").lower().startswith("commitment"):
        return ChargeCategory.PURCHASE, LineType.COMMITMENT_FEE, None, None
    for credit in credits:
        if credit.type in COMMITTED_USE_CREDITS:
            owner: Literal["payer"] | None = "payer" if COMMITTED_USE_CREDITS[credit.type] else None
            return category, LineType.COMMITMENT_COVERED, credit.credit_id or credit.name, owner
    return category, line_type, None, None


def gcp_row_to_record(
    row: Row, *, bill_id: str, file_name: str, row_number: int, digest: str, occurrence: int
) -> UsageRecord | RowProblem:
    """Map one Google Cloud export row to a usage record, or say which column is wrong and why."""
    try:
        billing_account = required(row, "billing_account_id")
        period = _period(row)
        credits = _credits(row)
        category, line_type, commitment, owner = _kind(row, credits)
        cost = amount(row, "cost", is_required=True)
        assert cost is not None  # is_required=True never returns None
        quantity = amount(row, "usage.amount", is_required=False)
        if category is ChargeCategory.USAGE:
            not_negative(quantity, "usage.amount", " on a regular line")
        billed = cost + sum((c.amount for c in credits), Decimal(0))
        return UsageRecord(
            record_id=record_id_for(PROVIDER, billing_account, period, digest, occurrence),
            bill_id=bill_id,
            source_ref=SourceRef(file=file_name, row=row_number),
            provider=PROVIDER,
            billing_account_id=billing_account,
            sub_account_id=optional(row, "project.id") or billing_account,
            sub_account_name=optional(row, "project.name"),
            billing_period=period,
            charge_period_start=timestamp(row, "usage_start_time"),
            charge_period_end=timestamp(row, "usage_end_time"),
            charge_category=category,
            line_type=line_type,
            service_name=required(row, "service.description"),
            service_category=optional(row, "service.id"),
            sku_id=optional(row, "sku.id"),
            description=optional(row, "sku.description"),
            region=optional(row, "location.region") or optional(row, "location.location"),
            resource_id=optional(row, "resource.global_name") or optional(row, "resource.name"),
            commitment_id=commitment,
            commitment_owner=owner,
            pricing_quantity=amount(row, "usage.amount_in_pricing_units", is_required=False),
            pricing_unit=optional(row, "usage.pricing_unit"),
            consumed_quantity=quantity,
            consumed_unit=optional(row, "usage.unit"),
            currency=currency(row, "currency"),
            list_cost=amount(row, "cost_at_list", is_required=False),
            on_demand_cost=cost,
            billed_cost=billed,
            effective_cost=billed,
            tags=_labels(row),
            credits=credits or None,
        )
    except RowRejected as exc:
        return exc.problem
