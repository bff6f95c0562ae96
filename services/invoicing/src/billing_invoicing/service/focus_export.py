"""A customer's invoice as a FOCUS 1.2 dataset: every charge behind it, in the FinOps
Foundation's FinOps Open Cost and Usage Specification, as a CSV its FinOps tools can load.

Seen from the customer, we are the invoice issuer: ``InvoiceIssuerName`` is our invoicing
entity, ``InvoiceId`` our invoice number, ``BillingAccountId`` the customer, and the costs are
ours to the customer: ``BilledCost`` (= ``EffectiveCost`` = ``ContractedCost``) is the price we
charge, ``ListCost`` the provider's public on-demand price of the line converted to the
invoicing currency (the price we charge where the provider gave none, as FOCUS asks of charges
without a list price). What the usage cost us never appears, nor the margin or pricing rule.
``ProviderName`` and ``PublisherName`` stay the cloud provider.

One row per rated charge (the same stored charges as the usage CSV, ``usage_csv.py``), then a
row per invoice line that no charge carries (subscriptions: ``Purchase``; included
infrastructure netted: ``Credit``; others: ``Adjustment``), a ``Tax`` row per tax rate, and an
``Adjustment`` row for the rounding of the subtotal to minor units, so that the ``BilledCost``
of the dataset adds up exactly to the invoice's total (FOCUS: "the sum of the BilledCost for a
given InvoiceId MUST match the sum of the payable amount" of that invoice). Late usage of an
earlier period is ``ChargeClass = Correction``. A null is an empty cell. Only finalized
invoices have a dataset (a draft has no invoice id yet).

Provider text is written as the usage CSV writes it: a cell that a spreadsheet would run as a
formula is prefixed with ``'`` (``usage_csv.neutralized``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import TextIO

from billing_invoicing.domain.access import Scope
from billing_invoicing.domain.invoice import InvoiceDocument, InvoiceLine, LineKind
from billing_invoicing.domain.proration import month_bounds
from billing_invoicing.domain.stored import ChargeLine, InvoiceRow
from billing_invoicing.domain.units import from_units
from billing_invoicing.service.invoice_queries import QueryPorts, invoice_document
from billing_invoicing.service.usage_csv import neutralized

FOCUS_VERSION = "1.2"

COLUMNS = [
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    "x_ChargeId",
]
"""FOCUS 1.2's mandatory columns, the recommended ``ChargeFrequency`` and ``InvoiceId``, the
conditional ones of a cloud provider's dataset, and our charge id (custom columns start with
``x_``). Always null: the commitment-discount columns (savings of the payer's commitments are
removed before we price, so no price of ours is discounted by one), the unit prices (we price
lines, not units), resource names and types, and tags (not carried through rating)."""

TEXT_COLUMNS = frozenset(
    {
        "ChargeDescription",
        "ProviderName",
        "PublisherName",
        "RegionId",
        "RegionName",
        "ServiceName",
        "SkuId",
        "SkuPriceId",
        "ConsumedUnit",
        "SubAccountId",
        "SubAccountName",
        "x_ChargeId",
        "BillingAccountName",
        "InvoiceIssuerName",
        "PricingUnit",
    }
)
"""Columns whose text comes from providers or the catalog (neutralized for spreadsheets)."""

SERVICE_CATEGORIES = frozenset(
    {
        "AI and Machine Learning",
        "Analytics",
        "Business Applications",
        "Compute",
        "Databases",
        "Developer Tools",
        "Multicloud",
        "Identity",
        "Integration",
        "Internet of Things",
        "Management and Governance",
        "Media",
        "Migration",
        "Mobile",
        "Networking",
        "Security",
        "Storage",
        "Web",
        "Other",
    }
)
"""FOCUS 1.2's allowed ServiceCategory values; anything else (or none) is ``Other``."""

CHARGE_CATEGORIES = {
    "usage": "Usage",
    "purchase": "Purchase",
    "tax": "Tax",
    "credit": "Credit",
    "adjustment": "Adjustment",
}

Row = dict[str, str | None]

LINE_KINDS = {
    LineKind.SUBSCRIPTION: ("Purchase", "Recurring", "Subscriptions"),
    LineKind.INCLUDED: ("Credit", "Recurring", "Included cloud infrastructure"),
}
"""Invoice lines no charge carries, as FOCUS ChargeCategory, ChargeFrequency, ServiceName
(any other such line: an ``Adjustment`` named by its description)."""


class FocusUnavailableError(LookupError):
    """The invoice has no FOCUS dataset (yet): it is a draft."""


def focus_time(moment: datetime | date) -> str:
    """FOCUS's date/time format: UTC, ``YYYY-MM-DDTHH:mm:ssZ`` (a naive datetime, as MongoDB
    returns them, is UTC; a date is its midnight)."""
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(), tzinfo=UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def period_range(period: str) -> tuple[str, str]:
    """A ``YYYY-MM`` period's inclusive start and exclusive end, in FOCUS's format."""
    first, last = month_bounds(period)
    following = date(last.year + last.month // 12, last.month % 12 + 1, 1)
    return focus_time(first), focus_time(following)


def _number(amount: Decimal) -> str:
    return format(amount, "f")


class FocusDataset:
    """The rows of one finalized invoice's FOCUS dataset."""

    def __init__(self, stored: InvoiceRow) -> None:
        document = stored.document
        number = stored.number
        if document is None or not number:
            msg = (
                f"invoice {stored.invoice_id} is {stored.status or 'a draft'}: its FOCUS "
                "dataset exists once it is finalized and numbered"
            )
            raise FocusUnavailableError(msg)
        self.invoice = InvoiceDocument.model_validate(document)
        self.number = number
        self.billing_start, self.billing_end = period_range(self.invoice.period)

    def _common(self) -> Row:
        inv = self.invoice
        return {
            "BillingAccountId": inv.customer_id,
            "BillingAccountName": inv.buyer.name,
            "BillingCurrency": inv.currency,
            "BillingPeriodStart": self.billing_start,
            "BillingPeriodEnd": self.billing_end,
            "InvoiceId": self.number,
            "InvoiceIssuerName": inv.seller.name,
        }

    def charge_row(self, line: ChargeLine) -> Row:
        """A stored rated charge as a FOCUS row."""
        currency = line.currency
        price = from_units(line.price_units, currency)
        listed = line.list_price_units
        list_cost = price if listed is None else from_units(listed, currency)
        category = CHARGE_CATEGORIES[line.charge_category]
        usage_period = line.period
        start = line.charge_period_start
        end = line.charge_period_end
        usage_start, usage_end = period_range(usage_period)
        quantity = line.quantity if category != "Tax" else None
        unit = (line.unit or "Units") if quantity is not None else None
        service_category = line.service_category
        if category == "Usage":
            frequency = "Usage-Based"
        elif category == "Purchase" and line.line_type == "commitment_fee":
            frequency = "Recurring"
        else:
            frequency = "One-Time"
        late = line.late or usage_period != self.invoice.period
        region = line.region or None
        return self._common() | {
            "BilledCost": _number(price),
            "EffectiveCost": _number(price),
            "ContractedCost": _number(price),
            "ListCost": _number(list_cost),
            "ChargeCategory": category,
            "ChargeClass": "Correction" if late else None,
            "ChargeDescription": line.description or f"{line.service_name} ({line.provider})",
            "ChargeFrequency": frequency,
            "ChargePeriodStart": usage_start if start is None else focus_time(start),
            "ChargePeriodEnd": usage_end if end is None else focus_time(end),
            "PricingQuantity": quantity,
            "PricingUnit": unit,
            "PricingCategory": "Standard" if category in ("Usage", "Purchase") else None,
            "ConsumedQuantity": quantity if category == "Usage" else None,
            "ConsumedUnit": unit if category == "Usage" else None,
            "ProviderName": line.provider,
            "PublisherName": line.provider,
            "RegionId": region,
            "RegionName": region,
            "ServiceCategory": (
                service_category if service_category in SERVICE_CATEGORIES else "Other"
            ),
            "ServiceName": line.service_name,
            "SkuId": line.sku_id or None,
            "SkuPriceId": (line.sku_price_id or None) if category != "Tax" else None,
            "SubAccountId": line.sub_account_id,
            "SubAccountName": line.sub_account_name or line.sub_account_id,
            "x_ChargeId": line.charge_id,
        }

    def invoice_rows(self) -> Iterator[Row]:
        """The rows no charge carries: subscriptions, netting and other invoice lines, taxes,
        and the rounding of the subtotal."""
        inv = self.invoice
        issuer = inv.seller.name
        whole = self._common() | {
            "ChargePeriodStart": self.billing_start,
            "ChargePeriodEnd": self.billing_end,
            "ProviderName": issuer,
            "PublisherName": issuer,
            "ServiceCategory": "Other",
        }
        exact = Decimal(0)
        for line in inv.lines:
            exact += line.amount_exact
            if line.kind in (LineKind.USAGE, LineKind.CORRECTION):
                continue  # carried by the charges
            yield _line_row(whole, line)
        for tax in inv.taxes:
            if tax.tax:
                yield _whole_row(whole, tax.tax, "Tax", tax.label, tax.label)
        rounding = inv.subtotal - exact
        if rounding:
            yield _whole_row(
                whole,
                rounding,
                "Adjustment",
                "Rounding of the invoice to the currency's minor units",
                "Rounding",
            )


def _whole_row(whole: Row, amount: Decimal, category: str, description: str, service: str) -> Row:
    """A one-time row of the whole invoice (a tax, the rounding)."""
    return whole | {
        "BilledCost": _number(amount),
        "EffectiveCost": _number(amount),
        "ContractedCost": _number(amount),
        "ListCost": _number(amount),
        "ChargeCategory": category,
        "ChargeDescription": description,
        "ChargeFrequency": "One-Time",
        "ServiceName": service,
    }


def _line_row(whole: Row, line: InvoiceLine) -> Row:
    """The row of an invoice line no charge carries: its category, frequency and service by
    its kind (:data:`LINE_KINDS`; others: a one-time adjustment), and a subscription's
    quantity."""
    amount = _number(line.amount_exact)
    row = whole | {
        "BilledCost": amount,
        "EffectiveCost": amount,
        "ContractedCost": amount,
        "ListCost": amount,
        "ChargeDescription": line.description,
    }
    category, frequency, service = LINE_KINDS.get(
        line.kind, ("Adjustment", "One-Time", line.description)
    )
    row |= {
        "ChargeCategory": category,
        "ChargeFrequency": frequency,
        "ServiceName": service,
    }
    if line.kind is LineKind.SUBSCRIPTION:
        quantity = line.quantity or 1  # invoices finalized before lines had one: 1
        row |= {
            "PricingCategory": "Standard",
            "PricingQuantity": str(quantity),
            "PricingUnit": "Subscription" if quantity == 1 else "Subscriptions",
        }
    return row


async def write_focus_csv(
    stored: InvoiceRow, charges: AsyncIterator[ChargeLine], out: TextIO
) -> int:
    """Write the FOCUS 1.2 dataset of a finalized invoice (``stored``: its stored document;
    ``charges``: its stored charges) as CSV; return the number of rows.
    :class:`FocusUnavailableError` for a draft."""
    dataset = FocusDataset(stored)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)

    def cells(row: Row) -> list[str]:
        values = [row.get(name) for name in COLUMNS]
        return [
            "" if value is None else neutralized(value) if name in TEXT_COLUMNS else value
            for name, value in zip(COLUMNS, values, strict=True)
        ]

    count = 0
    async for line in charges:
        writer.writerow(cells(dataset.charge_row(line)))
        count += 1
    for row in dataset.invoice_rows():
        writer.writerow(cells(row))
        count += 1
    return count


async def invoice_focus(ports: QueryPorts, scope: Scope, number: str) -> tuple[str, str]:
    """The file name and text of a finalized invoice's FOCUS 1.2 dataset, for a caller whose
    scope covers its customer (another customer's invoice is not found, as for the CSV)."""
    stored = await invoice_document(ports, scope, number)
    out = io.StringIO()
    await write_focus_csv(stored, ports.invoices.charges_of(stored.invoice_id), out)
    return focus_file_name(stored), out.getvalue()


def focus_file_name(stored: InvoiceRow) -> str:
    """``<number>-focus.csv``."""
    return f"{stored.number or stored.invoice_id.replace(':', '-')}-focus.csv"
