"""OpenStack rated usage (CloudKitty dataframes, one rated entry per row) -> usage records (pure).

CloudKitty stores, per collect period (``begin``/``end``) and metric ``type`` (``instance``,
``volume.size``, ``image.size``...), entries with a volume (``qty`` in ``unit``), a rating
(``price``: what the entry costs, not a unit rate), the ``groupby`` keys (``id`` of the
resource, ``project_id``, ``user_id``...) and ``metadata`` (``flavor_name``...). A row is one
entry, either flattened with the bare names (``qty``, ``price``, ``project_id``,
``flavor_name``) or as the JSON-lines reader flattens a dataframe entry (``vol.qty``,
``rating.price``, ``groupby.project_id``, ``metadata.flavor_name``); each field lists its
spellings and the first one the row has is read.

Rules:
* The sub-account is the project; the billing account is ``domain_id`` when the row has one,
  else the project itself.
* CloudKitty has no currency: it rates in one currency per deployment, whatever unit the
  operator's rating rules use. A row's currency is its ``currency`` cell (ISO 4217) when the
  file has that column; else the load gives every row the deployment's currency, from
  ``--currency`` or the catalog (:func:`deployment_currency`), and refuses the file when
  neither says it: a guess would bill the wrong amount silently.
* CloudKitty's API output (``GET /v2/dataframes``, ``GET /v2/summary``) is flattened by its
  reader to the dataframe spellings; a summary's rows are only billable when it is grouped by
  ``type`` and ``project_id`` (``groupby.type``, ``groupby.project_id``).
* The billing period is the month of ``begin``; ``begin``/``end`` are ISO 8601 or Unix seconds.
* Every entry is on-demand usage: billed cost = ``price``; a unit ``rate`` column, when
  present, is kept as the list price x quantity. The SKU is the flavor (``flavor_name``, else
  ``flavor``, else ``volume_type``), the service the metric type.
* Quantities cannot be negative.
"""

from __future__ import annotations

from datetime import UTC, datetime

from billing_ingest.domain.cells import (
    Row,
    RowProblem,
    RowRejected,
    amount,
    currency,
    not_negative,
    optional,
    period_of,
    record_id_for,
    required,
    timestamp,
)
from billing_schemas.events import ChargeCategory, LineType, SourceRef, UsageRecord
from billing_schemas.money import MoneyError, minor_units

PROVIDER = "OpenStack"

BEGIN = ("begin", "period.begin")
END = ("end", "period.end")
TYPE = ("type", "metric", "groupby.type")
QTY = ("qty", "vol.qty")
UNIT = ("unit", "vol.unit")
PRICE = ("price", "rating.price")
RATE = ("rate",)
PROJECT = ("project_id", "groupby.project_id", "tenant_id", "groupby.tenant_id")
DOMAIN = ("domain_id", "groupby.domain_id", "metadata.domain_id")
RESOURCE = ("resource_id", "id", "groupby.id")
SKU = (
    "flavor_name",
    "metadata.flavor_name",
    "flavor",
    "metadata.flavor",
    "volume_type",
    "metadata.volume_type",
)
REGION = ("region", "metadata.region")
CURRENCY = ("currency",)

REQUIRED_ONE_OF = (BEGIN, END, QTY, PRICE, PROJECT)
"""Columns without which a file is not CloudKitty rated usage we can use (each: its spellings).
The metric type is needed too (a row without one is rejected by name, as a summary not grouped
by ``type`` has none), and the currency may come from outside the file."""

DECIMAL_FIELDS = ("qty", "price", "rate", "vol.qty", "rating.price")
"""Numeric fields the JSON-lines reader keeps as exact decimals."""


def _pick(row: Row, names: tuple[str, ...]) -> str:
    return next((n for n in names if n in row), names[0])


def _cell(row: Row, names: tuple[str, ...]) -> str | None:
    return next((v for n in names if (v := optional(row, n)) is not None), None)


def _moment(row: Row, column: str) -> datetime:
    """ISO 8601, or Unix seconds as CloudKitty's dataframes write them."""
    value = required(row, column)
    if value.isdigit():
        return datetime.fromtimestamp(int(value), tz=UTC)
    return timestamp(row, column)


def openstack_row_to_record(
    row: Row, *, bill_id: str, file_name: str, row_number: int, digest: str, occurrence: int
) -> UsageRecord | RowProblem:
    """Map one CloudKitty rated entry to a usage record, or say which column is wrong and why."""
    try:
        project = required(row, _pick(row, PROJECT))
        service = required(row, _pick(row, TYPE))
        account = _cell(row, DOMAIN) or project
        begin = _moment(row, _pick(row, BEGIN))
        period = period_of(begin)
        qty_column = _pick(row, QTY)
        quantity = amount(row, qty_column, is_required=True)
        assert quantity is not None  # is_required=True never returns None
        not_negative(quantity, qty_column)
        billed = amount(row, _pick(row, PRICE), is_required=True)
        assert billed is not None
        rate = amount(row, _pick(row, RATE), is_required=False)
        unit = _cell(row, UNIT)
        return UsageRecord(
            record_id=record_id_for(PROVIDER, account, period, digest, occurrence),
            bill_id=bill_id,
            source_ref=SourceRef(file=file_name, row=row_number),
            provider=PROVIDER,
            billing_account_id=account,
            sub_account_id=project,
            sub_account_name=optional(row, "project_name"),
            billing_period=period,
            charge_period_start=begin,
            charge_period_end=_moment(row, _pick(row, END)),
            charge_category=ChargeCategory.USAGE,
            line_type=LineType.ON_DEMAND,
            service_name=service,
            sku_id=_cell(row, SKU),
            region=_cell(row, REGION),
            resource_id=_cell(row, RESOURCE),
            pricing_quantity=quantity,
            pricing_unit=unit,
            consumed_quantity=quantity,
            consumed_unit=unit,
            currency=currency(row, _pick(row, CURRENCY)),
            list_cost=None if rate is None else rate * quantity,
            billed_cost=billed,
            effective_cost=billed,
        )
    except RowRejected as exc:
        return exc.problem


def deployment_currency(given: str | None, catalog: set[str]) -> str | RowProblem:
    """The currency of CloudKitty data that names none: ``--currency`` when given, else the
    one currency the catalog's customers with OpenStack accounts are invoiced in.

    CloudKitty rates a whole deployment in one currency, and an operator who invoices all its
    OpenStack customers in one currency rates in it; when they are invoiced in several, the
    catalog cannot say which one CloudKitty used, and neither do we.
    """
    if given is not None:
        code = given.strip().upper()
        try:
            minor_units(code)
        except MoneyError:
            return RowProblem(None, f"--currency {given!r} is not an ISO 4217 currency code")
        return code
    if len(catalog) == 1:
        return next(iter(catalog))
    why = (
        "no customer of the catalog has an OpenStack account"
        if not catalog
        else f"the catalog's OpenStack customers are invoiced in {', '.join(sorted(catalog))}"
    )
    return RowProblem(
        None,
        f"the data names no currency (CloudKitty rates in one currency per deployment) and "
        f"{why}: give it with --currency CODE",
    )
