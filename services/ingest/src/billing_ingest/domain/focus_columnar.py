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
    usage_line = pc.equal(category, text(ChargeCategory.USAGE.value))
    for column in _USAGE_QUANTITIES:  # a negative quantity on a usage line: the row path decides
        negative = pc.starts_with(pc.fill_null(cols.cell(column), text("")), "-")
        cols.require(pc.invert(pc.and_kleene(usage_line, negative)))
    list_cost = cols.decimal("ListCost", is_required=False)
    correction = pc.fill_null(
        pc.equal(pc.utf8_lower(cols.cell("ChargeClass")), text("correction")), FALSE
    )
    charge_class = pc.if_else(correction, text("correction"), text(None))
    owners: pa.Array | str = "null"
    commitment = cols.cell("CommitmentDiscountId")
    if commitment.null_count < len(commitment):
        commitments: list[str | None] = commitment.to_pylist()
        accounts: list[str | None] = account.to_pylist()
        subs: list[str | None] = cols.cell("SubAccountId").to_pylist()
        owners = pa.array(
            [
                None if c is None or a is None else commitment_owner(c, a, s)
                for c, a, s in zip(commitments, accounts, subs, strict=True)
            ],
            pa.string(),
        )
    tags, tags_ok = tags_of(cols.cell("Tags"))
    cols.require(tags_ok)
    source_ref = pc.binary_join_element_wise(
        pa.scalar('{"file":' + orjson.dumps(file_name).decode() + ',"row":', pa.string()),
        pc.cast(pa.array(row_numbers, pa.int64()), pa.string()),
        text("}"),
        text(""),
    )
    members = json_members(
        [
            ("bill_id", orjson.dumps(bill_id).decode()),
            ("source_ref", Json(source_ref)),
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
            ("commitment_owner", owners),
            ("charge_class", charge_class),
        ]
    )
    cols.require(control_free(members))
    ok = cols.ok
    return ColumnarBatch(
        content=pc.cast(content_of(batch), pa.binary()).to_pylist(),
        ok=ok.to_pylist(),
        members=pc.cast(pc.fill_null(members, text("")), pa.binary()).to_pylist(),
        sub_account=texts(sub_account),
        scope=pc.unique(
            pc.filter(pc.binary_join_element_wise(provider, account, period, text("|")), ok)
        ).to_pylist(),
        billed_cost=_by_currency(billed, currency, ok),
    )


def _by_currency(billed: pa.Array, currency: pa.Array, ok: pa.Array) -> dict[str, list[str]]:
    """The billed cost cells of the mapped rows, by currency, in row order."""
    billed, currency = pc.filter(billed, ok), pc.filter(currency, ok)
    return {
        code: pc.filter(billed, pc.equal(currency, text(code))).to_pylist()
        for code in pc.unique(currency).to_pylist()
    }
