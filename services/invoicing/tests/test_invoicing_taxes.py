"""Taxes (docs/money.md, domain/tax.py): which regime, which rate, and rounding once.

Every figure is computed by hand in the comment above its assertion.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billing_catalog.models import Customer, InvoicingEntity, TaxRate
from billing_invoicing.domain.invoice import ChargeGroup, InvoiceDocument, assemble_invoice
from billing_invoicing.domain.tax import (
    OUTSIDE_SCOPE_MENTION,
    REVERSE_CHARGE_MENTION,
    TaxError,
    TaxTreatment,
    tax_regime,
)

D = Decimal
RATES = [
    TaxRate(country="DE", percent=D("19")),
    TaxRate(country="DE", percent=D("16"), effective_from=date(2020, 7, 1)),
    TaxRate(country="DE", percent=D("19"), effective_from=date(2021, 1, 1)),
    TaxRate(country="FR", percent=D("20")),
    TaxRate(country="JP", percent=D("10"), name="Consumption tax"),
]


def entity(country: str = "DE") -> InvoicingEntity:
    return InvoicingEntity.model_validate(
        {
            "id": "seller",
            "name": "Seller GmbH",
            "address": {"lines": ["Strasse 1"], "country": country},
            "vat_id": "DE123456789",
            "number_prefix": "S-",
            "email": "billing@seller.example",
        }
    )


def customer(country: str, currency: str = "EUR", vat_id: str | None = None) -> Customer:
    return Customer.model_validate(
        {
            "id": f"buyer-{country.lower()}",
            "name": "Buyer",
            "address": {"lines": ["Street 1"], "country": country},
            "vat_id": vat_id,
            "currency": currency,
            "invoicing_entity": "seller",
            "price_list": "p",
        }
    )


def group(price: str, service: str = "Compute") -> ChargeGroup:
    return ChargeGroup(
        provider="AWS", service_name=service, charge_count=1, cost=D(0), price=D(price)
    )


def invoice(buyer: Customer, *prices: str, seller: str = "DE", **kw: Any) -> InvoiceDocument:
    groups = [group(p, f"S{i}") for i, p in enumerate(prices)]
    return assemble_invoice(
        customer=buyer,
        entity=entity(seller),
        period=kw.get("period", "2024-09"),
        groups=groups,
        tax_rates=RATES,
    )


def test_domestic_vat_is_computed_on_the_unrounded_subtotal_and_rounded_once() -> None:
    # lines 6.013 + 4.013 = 10.026 exactly; subtotal rounded once: 10.03
    # VAT 19% of the unrounded 10.026 = 1.90494 -> 1.90
    # (19% of the rounded 10.03 would be 1.9057 -> 1.91: the off-by-a-cent peers make)
    inv = invoice(customer("DE"), "6.013", "4.013")

    assert inv.subtotal == D("10.03")
    [vat] = inv.taxes
    assert (vat.label, vat.base_exact, vat.tax_exact) == ("VAT 19% (DE)", D("10.026"), D("1.90494"))
    assert inv.tax == D("1.90")
    assert inv.total == D("11.93")  # 10.03 + 1.90
    assert inv.outstanding == inv.total
    assert inv.tax_mention is None
    # the printed lines add up to the subtotal: floors 6.01 + 4.01 = 10.02, one cent missing;
    # equal remainders (0.003 each): the earlier line gets it -> 6.02 + 4.01
    assert [line.amount for line in inv.lines] == [D("6.02"), D("4.01")]


def test_eu_business_customer_in_another_member_state_is_reverse_charged() -> None:
    inv = invoice(customer("FR", vat_id="FR12345678901"), "1000.00")

    [vat] = inv.taxes
    assert vat.label == "VAT 0% (reverse charge)"
    assert (inv.subtotal, inv.tax, inv.total) == (D("1000.00"), D("0.00"), D("1000.00"))
    assert inv.tax_mention == REVERSE_CHARGE_MENTION
    assert "Article 196" in REVERSE_CHARGE_MENTION


def test_eu_consumer_in_another_member_state_pays_their_countrys_rate() -> None:
    # FR 20% of 99.99 = 19.998 -> 20.00; total 119.99
    inv = invoice(customer("FR"), "99.99")

    assert inv.taxes[0].label == "VAT 20% (FR)"
    assert (inv.tax, inv.total) == (D("20.00"), D("119.99"))


def test_customer_outside_the_eu_gets_no_vat_with_the_mention() -> None:
    inv = invoice(customer("US", "USD"), "250.00")

    assert inv.taxes[0].label == "VAT 0% (not subject)"
    assert (inv.tax, inv.total) == (D("0.00"), D("250.00"))
    assert inv.tax_mention == OUTSIDE_SCOPE_MENTION


def test_the_rate_in_effect_at_the_end_of_the_period_applies() -> None:
    # DE: 19% until 2020-06-30, 16% from 2020-07-01, 19% again from 2021-01-01
    def percent(period: str) -> Decimal:
        return invoice(customer("DE"), "100", period=period).taxes[0].percent

    assert percent("2020-06") == D("19")
    assert percent("2020-07") == D("16")
    assert percent("2020-12") == D("16")
    assert percent("2021-01") == D("19")


def test_a_missing_rate_is_an_error_naming_the_country_and_date() -> None:
    with pytest.raises(TaxError, match=r"no tax rate for IT in effect on 2024-09-30"):
        tax_regime(
            seller_country="IT",
            buyer_country="IT",
            buyer_vat_id="IT1",
            rates=RATES,
            tax_point=date(2024, 9, 30),
        )


def test_jpy_has_no_minor_units() -> None:
    # JP seller, JP buyer, 10%: lines 1234.5 + 0.4 = 1234.9 -> subtotal 1235
    # tax 10% of the unrounded 1234.9 = 123.49 -> 123; total 1235 + 123 = 1358
    # lines: floors 1234 + 0 = 1234, one yen missing -> the larger remainder (.5): 1235 + 0
    inv = invoice(customer("JP", "JPY"), "1234.5", "0.4", seller="JP")

    assert inv.taxes[0].label == "Consumption tax 10% (JP)"
    assert (inv.subtotal, inv.tax, inv.total) == (D("1235"), D("123"), D("1358"))
    assert [line.amount for line in inv.lines] == [D("1235"), D("0")]
    assert inv.tax_mention is None


def test_regime_table() -> None:
    def treatment(seller: str, buyer: str, vat_id: str | None) -> TaxTreatment:
        return tax_regime(
            seller_country=seller,
            buyer_country=buyer,
            buyer_vat_id=vat_id,
            rates=RATES,
            tax_point=date(2024, 9, 30),
        ).treatment

    assert treatment("DE", "DE", "DE1") is TaxTreatment.DOMESTIC  # a VAT id changes nothing
    assert treatment("DE", "FR", "FR1") is TaxTreatment.REVERSE_CHARGE
    assert treatment("DE", "FR", None) is TaxTreatment.DISTANCE
    assert treatment("DE", "CH", "CHE1") is TaxTreatment.OUTSIDE_SCOPE
    assert treatment("JP", "DE", None) is TaxTreatment.OUTSIDE_SCOPE
