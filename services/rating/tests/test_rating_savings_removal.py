"""Savings removal and line treatments, on records shaped as ingest makes them from AWS CUR
(commitment owner read from the ARN) and from FOCUS (no owner given). Hand-computed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from billing_catalog.pricing import PriceList, Rebilling
from billing_rating.domain.rating import CustomerPricing, RatingError, rate_usage
from billing_schemas.events import ChargeCategory, LineType, RatedCharge, UsageRecord

MARKUP_10 = PriceList.model_validate({"id": "std", "version": 1, "markup_percent": "10"})
SP = "arn:aws:savingsplans::999:savingsplan/abc"


def customer(**policy: Any) -> CustomerPricing:
    return CustomerPricing("acme", "USD", MARKUP_10, Rebilling.model_validate(policy))


def line(line_type: LineType, billed: str, **fields: Any) -> UsageRecord:
    category = {
        LineType.COMMITMENT_FEE: ChargeCategory.PURCHASE,
        LineType.CREDIT: ChargeCategory.CREDIT,
        LineType.REFUND: ChargeCategory.CREDIT,
        LineType.DISCOUNT: ChargeCategory.CREDIT,
        LineType.TAX: ChargeCategory.TAX,
        LineType.ADJUSTMENT: ChargeCategory.ADJUSTMENT,
    }.get(line_type, ChargeCategory.USAGE)
    base: dict[str, Any] = {
        "record_id": f"{line_type.value}-{billed}",
        "provider": "AWS",
        "billing_account_id": "999",
        "sub_account_id": "111",
        "billing_period": "2024-09",
        "charge_period_start": datetime(2024, 9, 3, tzinfo=UTC),
        "charge_period_end": datetime(2024, 9, 3, 1, tzinfo=UTC),
        "charge_category": category,
        "line_type": line_type,
        "service_name": "Amazon EC2",
        "currency": "USD",
        "billed_cost": Decimal(billed),
    }
    base.update(fields)
    return UsageRecord.model_validate(base)


def rate(record: UsageRecord, price: CustomerPricing | None = None) -> RatedCharge:
    return rate_usage(record, price or customer()).charge


D = Decimal


# --- AWS CUR: a savings plan bought by the payer ------------------------------------------
# CUR shows SavingsPlanCoveredUsage at the on-demand cost (0.0464), a SavingsPlanNegation that
# takes it back (-0.0464) and the payer's SavingsPlanRecurringFee (0.0290).


def test_cur_payer_savings_plan_usage_is_charged_on_demand_and_the_rest_is_not_passed_on() -> None:
    owned = {"commitment_id": SP, "commitment_owner": "payer"}
    covered = rate(
        line(
            LineType.COMMITMENT_COVERED,
            "0.0464",
            on_demand_cost=D("0.0464"),
            list_cost=D("0.0464"),
            effective_cost=D("0.0290"),
            **owned,
        )
    )
    negation = rate(line(LineType.COMMITMENT_NEGATION, "-0.0464", **owned))
    fee = rate(line(LineType.COMMITMENT_FEE, "0.0290", **owned))
    # covered: on-demand 0.0464 x 1.10 = 0.05104
    assert (covered.price, covered.basis) == (D("0.05104"), "on-demand cost")
    assert covered.rule == "markup 10% on on-demand cost (global); payer commitment removed"
    # negation and fee reach the customer at 0; their cost stays, so margins are true
    assert (negation.price, negation.margin) == (D(0), D("0.0464"))
    assert (fee.price, fee.margin) == (D(0), D("-0.0290"))
    assert fee.rule == "not passed on (payer commitment: savings removal)"
    # the customer pays 0.05104; the reseller paid 0.0464 - 0.0464 + 0.0290 = 0.0290
    assert covered.price + negation.price + fee.price == D("0.05104")
    assert covered.cost + negation.cost + fee.cost == D("0.0290")
    assert covered.margin + negation.margin + fee.margin == D("0.02204")  # 0.05104 - 0.0290


def test_cur_payer_reserved_instance_usage_is_charged_on_demand() -> None:
    owned = {
        "commitment_id": "arn:aws:ec2:us-east-1:999:reserved-instances/r",
        "commitment_owner": "payer",
    }
    # DiscountedUsage: unblended 0, on-demand 0.096; the RIFee 0.06 stays with the payer
    covered = rate(line(LineType.COMMITMENT_COVERED, "0", on_demand_cost=D("0.096"), **owned))
    fee = rate(line(LineType.COMMITMENT_FEE, "0.06", **owned))
    assert covered.price == D("0.1056")  # 0.096 x 1.10
    assert fee.price == D(0)


# --- AWS CUR: commitments bought inside the customer's own account --------------------------


def test_cur_account_savings_plan_passes_its_benefit_through() -> None:
    owned = {
        "commitment_id": "arn:aws:savingsplans::111:savingsplan/x",
        "commitment_owner": "account",
    }
    covered = rate(line(LineType.COMMITMENT_COVERED, "0.0464", on_demand_cost=D("0.0464"), **owned))
    negation = rate(line(LineType.COMMITMENT_NEGATION, "-0.0464", **owned))
    fee = rate(line(LineType.COMMITMENT_FEE, "0.0290", **owned))
    # every line at billed cost x 1.10: 0.05104 - 0.05104 + 0.0319: the customer pays its plan
    assert [covered.price, negation.price, fee.price] == [D("0.05104"), D("-0.05104"), D("0.0319")]
    assert covered.rule == "markup 10% on billed cost (global); own commitment passed through"


def test_cur_account_reserved_instance_usage_costs_nothing_and_its_fee_is_marked_up() -> None:
    owned = {
        "commitment_id": "arn:aws:ec2:us-east-1:111:reserved-instances/r",
        "commitment_owner": "account",
    }
    covered = rate(line(LineType.COMMITMENT_COVERED, "0", on_demand_cost=D("0.096"), **owned))
    fee = rate(line(LineType.COMMITMENT_FEE, "0.06", **owned))
    assert (covered.price, fee.price) == (D(0), D("0.066"))  # 0 x 1.1; 0.06 x 1.1


def test_savings_removal_can_be_turned_off() -> None:
    price = customer(savings_removal=False)
    owned = {"commitment_id": SP, "commitment_owner": "payer"}
    covered = rate(
        line(LineType.COMMITMENT_COVERED, "0", on_demand_cost=D("0.096"), **owned), price
    )
    fee = rate(line(LineType.COMMITMENT_FEE, "0.06", **owned), price)
    assert (covered.price, fee.price) == (D(0), D("0.066"))


# --- FOCUS: covered usage has BilledCost 0 and ListCost the list price; no owner given --------


def test_focus_covered_usage_of_a_payer_commitment_is_charged_at_list_cost() -> None:
    # as the demo sample's row: BilledCost 0, EffectiveCost 0, ListCost 0.0464, SP used
    focus = line(
        LineType.COMMITMENT_COVERED,
        "0",
        list_cost=D("0.0464"),
        effective_cost=D("0"),
        commitment_id=SP,
        commitment_owner="payer",
    )
    assert rate(focus).price == D("0.05104")  # list 0.0464 x 1.10


def test_focus_commitment_without_owner_follows_the_configured_default() -> None:
    focus = line(LineType.COMMITMENT_COVERED, "0", list_cost=D("0.0464"), commitment_id=SP)
    # default: unknown owner = account, the benefit passes through: 0 x 1.10
    assert rate(focus).price == D(0)
    # a reseller whose commitments are all bought by the payer says so
    assert rate(focus, customer(unknown_commitment_owner="payer")).price == D("0.05104")
    purchase = line(LineType.COMMITMENT_FEE, "120", commitment_id=SP)
    assert rate(purchase, customer(unknown_commitment_owner="payer")).price == D(0)


def test_payer_covered_usage_without_any_on_demand_price_is_refused() -> None:
    covered = line(LineType.COMMITMENT_COVERED, "0", commitment_id=SP, commitment_owner="payer")
    with pytest.raises(RatingError, match="has no on-demand or list cost to charge"):
        rate(covered)


# --- rebilling basis ------------------------------------------------------------------------


def test_on_demand_basis_marks_up_the_public_price() -> None:
    usage = line(LineType.ON_DEMAND, "10.00", on_demand_cost=D("12.00"))
    charge = rate(usage, customer(basis="on_demand"))
    # 12.00 x 1.10 = 13.20; cost is still what we pay: 10.00; margin 3.20
    assert (charge.price, charge.cost, charge.margin) == (D("13.2"), D("10"), D("3.2"))
    assert (charge.basis, charge.basis_amount) == ("on-demand cost", D("12.00"))


def test_on_demand_basis_without_a_public_price_uses_billed_cost_and_says_so() -> None:
    charge = rate(line(LineType.ON_DEMAND, "10.00"), customer(basis="on_demand"))
    assert charge.price == D("11")
    assert charge.rule.endswith("; no on-demand price on the record")


def test_billed_cost_basis_ignores_the_public_price() -> None:
    charge = rate(line(LineType.ON_DEMAND, "10.00", on_demand_cost=D("12.00")))
    assert charge.price == D("11")  # 10.00 x 1.10


# --- credits, refunds, taxes, provider discounts: documented defaults -------------------------


@pytest.mark.parametrize(
    ("line_type", "billed", "price", "text"),
    [
        # a credit reaches the customer as given, no markup
        (LineType.CREDIT, "-2.6137", "-2.6137", "at cost (credits: at_cost)"),
        # a refund reverses a rated charge, so it is rated like it: -10 x 1.10
        (LineType.REFUND, "-10", "-11", "markup 10% on billed cost (global); refunds: rate"),
        # provider tax is the reseller's input tax; the invoice carries its own tax
        (LineType.TAX, "5", "0", "not passed on (taxes: exclude)"),
        # EDP/SPP/bundled discounts are the reseller's
        (LineType.DISCOUNT, "-3", "0", "not passed on (provider_discounts: exclude)"),
        # an adjustment corrects usage, priced like it: 0.192 x 1.10
        (
            LineType.ADJUSTMENT,
            "0.192",
            "0.2112",
            "markup 10% on billed cost (global); adjustments: rate",
        ),
    ],
)
def test_default_treatments(line_type: LineType, billed: str, price: str, text: str) -> None:
    charge = rate(line(line_type, billed))
    assert charge.price == D(price)
    assert charge.rule == text
    assert charge.margin == D(price) - D(billed)


def test_treatments_are_configurable() -> None:
    price = customer(credits="exclude", taxes="at_cost", provider_discounts="rate")
    assert rate(line(LineType.CREDIT, "-2"), price).price == D(0)
    assert rate(line(LineType.TAX, "5"), price).price == D(5)
    assert rate(line(LineType.DISCOUNT, "-3"), price).price == D("-3.3")  # -3 x 1.10


def test_a_rated_refund_uses_the_most_specific_percentage_rule_not_a_unit_price() -> None:
    price_list = PriceList.model_validate(
        {
            "id": "mixed",
            "versions": [
                {
                    "version": 1,
                    "effective_from": "2024-01-01",
                    "currency": "USD",
                    "rules": [
                        {"kind": "markup", "percent": "10"},
                        {"kind": "discount", "percent": "5", "provider": "AWS"},
                        {"kind": "unit_price", "unit_price": "9", "sku": "X"},
                    ],
                }
            ],
        }
    )
    refund = line(LineType.REFUND, "-20", sku_id="X", pricing_quantity=D("1"))
    charge = rate(refund, CustomerPricing("acme", "USD", price_list))
    assert charge.price == D("-19")  # -20 x (1 - 5/100); the SKU's unit price is for usage
