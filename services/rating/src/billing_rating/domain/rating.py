"""Pricing a usage record for a customer: pure, no I/O.

The walking skeleton's rule: price = cost x (1 + markup% / 100), where cost is the provider's
billed cost of the line. The result keeps both figures, the margin and the rule applied, so every
amount on an invoice can be explained. Amounts stay exact (no rounding) until the invoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing_schemas.catalog import PriceList
from billing_schemas.events import RatedCharge, UsageRecord

HUNDRED = Decimal(100)


class RatingError(ValueError):
    """A record that cannot be rated as it stands (the reason is in the message)."""


@dataclass(frozen=True)
class CustomerPricing:
    """What rating needs to know of the customer owning an account."""

    customer_id: str
    currency: str
    price_list: PriceList


def rate_usage(record: UsageRecord, pricing: CustomerPricing) -> RatedCharge:
    """Rate one usage record: price = billed cost x (1 + markup% / 100), exact.

    Only records in the customer's invoicing currency are rated; other currencies need FX
    rates, which the catalog does not carry yet, so they are refused rather than guessed.
    """
    if record.currency != pricing.currency:
        msg = (
            f"record {record.record_id} is in {record.currency} but customer "
            f"{pricing.customer_id} is invoiced in {pricing.currency}: no FX rate available"
        )
        raise RatingError(msg)
    markup = pricing.price_list.markup_percent
    cost = record.billed_cost
    price = cost * (HUNDRED + markup) / HUNDRED
    return RatedCharge(
        charge_id=record.record_id,
        record_id=record.record_id,
        customer_id=pricing.customer_id,
        provider=record.provider,
        sub_account_id=record.sub_account_id,
        billing_period=record.billing_period,
        charge_period_start=record.charge_period_start,
        charge_category=record.charge_category,
        line_type=record.line_type,
        service_name=record.service_name,
        sku_id=record.sku_id,
        description=record.description,
        region=record.region,
        quantity=record.pricing_quantity,
        unit=record.pricing_unit,
        cost=cost,
        cost_currency=record.currency,
        price=price,
        currency=pricing.currency,
        margin=price - cost,
        rule=f"markup {markup.normalize():f}% on billed cost",
        price_list_id=pricing.price_list.id,
        price_list_version=pricing.price_list.version,
    )
