"""FOCUS (FinOps Open Cost and Usage Specification) 1.x rows -> normalized usage records.

Pure: takes one row as a dict of column -> string (or None for an empty/NULL cell) and returns a
:class:`UsageRecord` or a :class:`RowProblem` naming the column and the reason.

Rules:
* ``BillingPeriodStart`` gives the billing period (``YYYY-MM``); timestamps without a zone are
  UTC, as FOCUS requires.
* The sub-account that maps to a customer is ``SubAccountId``, or ``BillingAccountId`` when a
  provider leaves it empty.
* Usage whose ``CommitmentDiscountStatus`` is ``Used`` is commitment-covered; ``Unused`` is the
  idle part of a commitment, a commitment fee.
* The commitment's owner is read from ``CommitmentDiscountId`` when the id names an account (an
  AWS ARN's account field, a ``projects/<id>/`` or ``subscriptions/<id>/`` path): ``payer`` when
  that is ``BillingAccountId``, else ``account``. An id that names no account (Azure's
  reservation orders, Oracle's) leaves the owner unknown (None).
* The on-demand cost is ``ListCost`` (FOCUS: the cost at the provider's public list price).
* ``ChargeClass`` ``Correction`` is kept as the record's ``charge_class``.
* The version (1.0, 1.1, 1.2) changes no rule here; it is recorded as the format's name. It is
  the file's own marker where the data generator writes one (:func:`marked_version`), else
  what the columns show a version requires (:class:`FocusVersion`): 1.1 made
  ``ServiceSubcategory`` mandatory, so a file without it is 1.0 whatever newer columns it has
  (Microsoft's FOCUS 1.0 export carries 1.2's ``BillingAccountType`` and ``SubAccountType``);
  1.2 added no unconditionally mandatory column, so a 1.1-conformant file with any column 1.2
  added is 1.2.
* The record id is derived from provider, billing account, period and the line's identity (a
  digest of every cell of the row plus its occurrence among identical rows), so loading the same
  file again yields the same ids and downstream services store each line once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from billing_ingest.domain.cells import (
    Row,
    RowProblem,
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

ADDED_IN_1_1 = (
    "CapacityReservationId",
    "CapacityReservationStatus",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountUnit",
    "ServiceSubcategory",
    "SkuMeter",
    "SkuPriceDetails",
)
"""Columns FOCUS 1.1 added (its changelog): any one of them marks a 1.1 (or later) file."""

MANDATORY_FROM_1_1 = ("ServiceSubcategory",)
"""Columns FOCUS 1.1 introduced as mandatory (feature level Mandatory, not conditional):
every 1.1 or later file has them."""

ADDED_IN_1_2 = (
    "BillingAccountType",
    "SubAccountType",
    "InvoiceId",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
)
"""Columns FOCUS 1.2 added (all conditional or recommended): in a file that has what 1.1
requires, any one of them marks a 1.2 file."""

VERSIONS = ("1.0", "1.1", "1.2")
_VERSION = re.compile(r"^\s*(\d+\.\d+)")


@dataclass(frozen=True)
class FocusVersion:
    """How a FOCUS version's header is told (a :class:`~billing_ingest.domain.formats.HeaderRule`).

    ``missing`` is what the mapper needs (the same for every version); ``fits`` also needs the
    columns the version made mandatory and, if it has markers, one of them.
    """

    version: str
    requires: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()

    def missing(self, header: list[str]) -> list[str]:
        """Columns the mapper needs that the header lacks."""
        present = set(header)
        return [c for c in REQUIRED_COLUMNS if c not in present]

    def fits(self, header: list[str]) -> bool:
        """Whether the columns show this version (see the module docstring)."""
        present = set(header)
        if self.missing(header) or not present.issuperset(self.requires):
            return False
        return not self.markers or not present.isdisjoint(self.markers)


V1_2 = FocusVersion("1.2", requires=MANDATORY_FROM_1_1, markers=ADDED_IN_1_2)
V1_1 = FocusVersion("1.1", requires=MANDATORY_FROM_1_1)
V1_0 = FocusVersion("1.0")


def marked_version(row: Row) -> str | None:
    """The FOCUS version a row says its dataset is, when the data generator writes it.

    Microsoft's FinOps toolkit (FinOps hubs) writes each row's source dataset in
    ``x_SourceType`` (``FocusCost``) and its version in ``x_SourceVersion`` (``1.0``,
    ``1.0r2``, ``1.2-preview``): the FOCUS version is the leading ``major.minor``. None when the
    row has no such marker or names a version we do not know.
    """
    source_type = optional(row, "x_SourceType")
    version = optional(row, "x_SourceVersion")
    if source_type is None or version is None or "focus" not in source_type.lower():
        return None
    match = _VERSION.match(version)
    return match.group(1) if match and match.group(1) in VERSIONS else None


_CATEGORIES = {c.value: c for c in ChargeCategory}


def _category(row: Row) -> ChargeCategory:
    value = required(row, "ChargeCategory")
    try:
        return _CATEGORIES[value.lower()]
    except KeyError:
        allowed = ", ".join(c.value.capitalize() for c in ChargeCategory)
        raise RowRejected("ChargeCategory", f"{value!r} is not one of {allowed}") from None


def _line_type(category: ChargeCategory, row: Row) -> LineType:
    if category is ChargeCategory.USAGE:
        status = (optional(row, "CommitmentDiscountStatus") or "").lower()
        if status == "used":
            return LineType.COMMITMENT_COVERED
        return LineType.COMMITMENT_FEE if status == "unused" else LineType.ON_DEMAND
    return {
        ChargeCategory.PURCHASE: LineType.COMMITMENT_FEE,
        ChargeCategory.CREDIT: LineType.CREDIT,
        ChargeCategory.TAX: LineType.TAX,
        ChargeCategory.ADJUSTMENT: LineType.ADJUSTMENT,
    }[category]


_ID_PATH = re.compile(r"(?:^|/)(?:projects|subscriptions)/([^/]+)/", re.IGNORECASE)


def commitment_owner(
    commitment_id: str | None, billing_account: str, sub_account: str | None
) -> Literal["payer", "account"] | None:
    """Who bought the commitment, as far as its id says: ``payer`` when the id names the billing
    account, ``account`` when it names another account, None when it names none."""
    if commitment_id is None:
        return None
    owner: str | None = None
    if commitment_id.startswith("arn:"):
        parts = commitment_id.split(":")
        owner = parts[4] if len(parts) > 4 and parts[4] else None
    elif match := _ID_PATH.search(commitment_id):
        owner = match.group(1)
    if owner is None:
        return None
    if owner.lower() == billing_account.lower() and owner != sub_account:
        return "payer"
    return "account"


def _charge_class(row: Row) -> Literal["correction"] | None:
    """FOCUS ``ChargeClass``: ``Correction`` marks a line that corrects an earlier period's."""
    value = optional(row, "ChargeClass")
    return "correction" if value is not None and value.lower() == "correction" else None


def _tags(row: Row) -> dict[str, str]:
    raw = optional(row, "Tags")
    if raw is None:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        raise RowRejected("Tags", "Tags is not a JSON object") from None
    if not isinstance(parsed, dict):
        raise RowRejected("Tags", "Tags is not a JSON object")
    return {str(k): str(v) for k, v in parsed.items()}


def focus_row_to_record(
    row: Row, *, bill_id: str, file_name: str, row_number: int, digest: str, occurrence: int
) -> UsageRecord | RowProblem:
    """Map one FOCUS row to a usage record, or say which column is wrong and why."""
    try:
        provider = required(row, "ProviderName")
        billing_account = required(row, "BillingAccountId")
        period_start = timestamp(row, "BillingPeriodStart")
        period = period_of(period_start)
        category = _category(row)
        billed = amount(row, "BilledCost", is_required=True)
        assert billed is not None  # required=True never returns None
        sub_account = optional(row, "SubAccountId")
        commitment = optional(row, "CommitmentDiscountId")
        list_cost = amount(row, "ListCost", is_required=False)
        return UsageRecord(
            record_id=record_id_for(provider, billing_account, period, digest, occurrence),
            bill_id=bill_id,
            source_ref=SourceRef(file=file_name, row=row_number),
            provider=provider,
            billing_account_id=billing_account,
            sub_account_id=sub_account or billing_account,
            sub_account_name=optional(row, "SubAccountName"),
            billing_period=period,
            charge_period_start=timestamp(row, "ChargePeriodStart"),
            charge_period_end=timestamp(row, "ChargePeriodEnd"),
            charge_category=category,
            line_type=_line_type(category, row),
            service_name=required(row, "ServiceName"),
            service_category=optional(row, "ServiceCategory"),
            sku_id=optional(row, "SkuId"),
            sku_price_id=optional(row, "SkuPriceId"),
            description=optional(row, "ChargeDescription"),
            region=optional(row, "RegionId"),
            resource_id=optional(row, "ResourceId"),
            commitment_id=commitment,
            commitment_owner=commitment_owner(commitment, billing_account, sub_account),
            pricing_quantity=amount(row, "PricingQuantity", is_required=False),
            pricing_unit=optional(row, "PricingUnit"),
            consumed_quantity=amount(row, "ConsumedQuantity", is_required=False),
            consumed_unit=optional(row, "ConsumedUnit"),
            currency=currency(row, "BillingCurrency"),
            list_cost=list_cost,
            on_demand_cost=list_cost,
            billed_cost=billed,
            effective_cost=amount(row, "EffectiveCost", is_required=False),
            tags=_tags(row),
            charge_class=_charge_class(row),
        )
    except RowRejected as exc:
        return exc.problem
