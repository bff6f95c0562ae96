"""FOCUS rows -> usage record JSON, a batch at a time (the fast path of :mod:`.focus`).

The same mapping as :func:`billing_ingest.domain.focus.focus_row_to_record`, written with
pyarrow compute over whole columns; rows it cannot write in plain form are left to that row
mapper (see :mod:`billing_ingest.domain.columnar`). ``test_ingest_columnar`` holds the two to
the same records.
"""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from billing_ingest.domain.columnar import (
    FALSE,
    ColumnarBatch,
    Columns,
    Json,
    content_of,
    control_free,
    json_members,
    json_string,
    tags_of,
    text,
    texts,
)
from billing_ingest.domain.focus import commitment_owner
from billing_schemas.events import ChargeCategory, LineType

_LINE_TYPE_OF_CATEGORY = {
    ChargeCategory.PURCHASE.value: LineType.COMMITMENT_FEE.value,
    ChargeCategory.CREDIT.value: LineType.CREDIT.value,
    ChargeCategory.TAX.value: LineType.TAX.value,
    ChargeCategory.ADJUSTMENT.value: LineType.ADJUSTMENT.value,
}

_CATEGORIES = pa.array([c.value for c in ChargeCategory], pa.string())

_OPTIONAL_TEXT = (
    ("sub_account_name", "SubAccountName"),
    ("service_category", "ServiceCategory"),
    ("sku_id", "SkuId"),
    ("sku_price_id", "SkuPriceId"),
    ("description", "ChargeDescription"),
    ("region", "RegionId"),
    ("resource_id", "ResourceId"),
    ("commitment_id", "CommitmentDiscountId"),
    ("pricing_unit", "PricingUnit"),
    ("consumed_unit", "ConsumedUnit"),
)
_OPTIONAL_DECIMALS = (
    ("pricing_quantity", "PricingQuantity"),
    ("consumed_quantity", "ConsumedQuantity"),
    ("effective_cost", "EffectiveCost"),
)
_USAGE_QUANTITIES = ("PricingQuantity", "ConsumedQuantity")


def _line_type(category: pa.Array, status: pa.Array) -> pa.Array:
    status = pc.fill_null(pc.utf8_lower(status), text(""))
    usage = pc.if_else(
        pc.equal(status, text("used")),
        text(LineType.COMMITMENT_COVERED.value),
        pc.if_else(
            pc.equal(status, text("unused")),
            text(LineType.COMMITMENT_FEE.value),
            text(LineType.ON_DEMAND.value),
        ),
    )
    usage_line = pc.equal(category, text(ChargeCategory.USAGE.value))
    result = pc.if_else(usage_line, usage, text(None))
    for value, line_type in _LINE_TYPE_OF_CATEGORY.items():
        result = pc.if_else(pc.equal(category, text(value)), text(line_type), result)
    return result


def focus_batch_to_json(
    batch: pa.RecordBatch, *, bill_id: str, file_name: str, row_numbers: list[int]
) -> ColumnarBatch:
    """Map a batch of FOCUS rows (every column a string); see the module docstring."""
    cols = Columns(batch)
    provider = cols.required("ProviderName")
    account = cols.required("BillingAccountId")
    period_start = cols.timestamp("BillingPeriodStart")
    period = pc.utf8_slice_codeunits(period_start, 0, 7)
    category = pc.utf8_lower(cols.required("ChargeCategory"))
    cols.require(pc.is_in(category, value_set=_CATEGORIES))
    billed = cols.decimal("BilledCost", is_required=True)
    service = cols.required("ServiceName")
    currency = cols.currency("BillingCurrency")
    sub_account = pc.coalesce(cols.cell("SubAccountId"), account)
    line_type = _line_type(category, cols.cell("CommitmentDiscountStatus"))
    _leave_negative_usage_quantities(cols, category)
    list_cost = cols.decimal("ListCost", is_required=False)
    tags, tags_ok = tags_of(cols.cell("Tags"))
    cols.require(tags_ok)
    members = json_members(
        [
            ("bill_id", orjson.dumps(bill_id).decode()),
            ("source_ref", Json(_source_refs(file_name, row_numbers))),
            ("provider", json_string(provider)),
            ("billing_account_id", json_string(account)),
            ("sub_account_id", json_string(sub_account)),
            ("billing_period", (period)),
            ("charge_period_start", (cols.timestamp("ChargePeriodStart"))),
            ("charge_period_end", (cols.timestamp("ChargePeriodEnd"))),
            ("charge_category", (category)),
            ("line_type", (line_type)),
            ("service_name", json_string(service)),
            ("currency", (currency)),
            ("billed_cost", (billed)),
            *((name, json_string(cols.cell(column))) for name, column in _OPTIONAL_TEXT),
            *(
                (name, (cols.decimal(column, is_required=False)))
                for name, column in _OPTIONAL_DECIMALS
            ),
            ("tags", Json(tags)),
            ("list_cost", list_cost),
            ("on_demand_cost", list_cost),
            ("commitment_owner", _commitment_owners(cols, account)),
            ("charge_class", _charge_class(cols)),
        ]
    )
    cols.require(control_free(members))
    ok = cols.ok
    return ColumnarBatch(
        content=pc.cast(content_of(batch), pa.binary()).to_pylist(),
        ok=ok.to_pylist(),
        members=pc.cast(pc.fill_null(members, text("")), pa.binary()).to_pylist(),
        sub_account=texts(sub_account),
        scope=_scope(provider, account, period, ok),
        billed_cost=_by_currency(billed, currency, ok),
    )


def _leave_negative_usage_quantities(cols: Columns, category: pa.Array) -> None:
    """A negative quantity on a usage line: the row path decides."""
    usage_line = pc.equal(category, text(ChargeCategory.USAGE.value))
    for column in _USAGE_QUANTITIES:
        negative = pc.starts_with(pc.fill_null(cols.cell(column), text("")), "-")
        cols.require(pc.invert(pc.and_kleene(usage_line, negative)))


def _charge_class(cols: Columns) -> pa.Array:
    """``correction`` where ChargeClass says so (any case), else null."""
    correction = pc.fill_null(
        pc.equal(pc.utf8_lower(cols.cell("ChargeClass")), text("correction")), FALSE
    )
    return pc.if_else(correction, text("correction"), text(None))


def _commitment_owners(cols: Columns, account: pa.Array) -> pa.Array | str:
    """Each row's commitment owner (per row, :func:`commitment_owner`), or the JSON ``null``
    for the whole column when no row names a commitment."""
    commitment = cols.cell("CommitmentDiscountId")
    if commitment.null_count == len(commitment):
        return "null"
    commitments: list[str | None] = commitment.to_pylist()
    accounts: list[str | None] = account.to_pylist()
    subs: list[str | None] = cols.cell("SubAccountId").to_pylist()
    return pa.array(
        [
            None if c is None or a is None else commitment_owner(c, a, s)
            for c, a, s in zip(commitments, accounts, subs, strict=True)
        ],
        pa.string(),
    )


def _source_refs(file_name: str, row_numbers: list[int]) -> pa.Array:
    """Each row's ``{"file": ..., "row": N}`` JSON object."""
    return pc.binary_join_element_wise(
        pa.scalar('{"file":' + orjson.dumps(file_name).decode() + ',"row":', pa.string()),
        pc.cast(pa.array(row_numbers, pa.int64()), pa.string()),
        text("}"),
        text(""),
    )


def _scope(provider: pa.Array, account: pa.Array, period: pa.Array, ok: pa.Array) -> list[str]:
    """The distinct ``provider|billing account|period`` entries of the mapped rows."""
    entries = pc.binary_join_element_wise(provider, account, period, text("|"))
    distinct: list[str] = pc.unique(pc.filter(entries, ok)).to_pylist()
    return distinct


def _by_currency(billed: pa.Array, currency: pa.Array, ok: pa.Array) -> dict[str, list[str]]:
    """The billed cost cells of the mapped rows, by currency, in row order."""
    billed, currency = pc.filter(billed, ok), pc.filter(currency, ok)
    return {
        code: pc.filter(billed, pc.equal(currency, text(code))).to_pylist()
        for code in pc.unique(currency).to_pylist()
    }
