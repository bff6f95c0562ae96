"""Money: wire round-trips, fixed-unit storage, summation and the rounding rules."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from billing_schemas.money import (
    FIXED_UNIT,
    CurrencyCode,
    Money,
    MoneyError,
    WireDecimal,
    allocate_rounded,
    from_fixed_units,
    minor_units,
    round_to_minor,
    to_fixed_units,
)

amounts = st.decimals(
    min_value=Decimal("-1000000000"),
    max_value=Decimal("1000000000"),
    places=9,
    allow_nan=False,
    allow_infinity=False,
)


class _Line(BaseModel):
    amount: WireDecimal
    currency: CurrencyCode


def test_amount_travels_as_a_decimal_string() -> None:
    line = _Line(amount=Decimal("0.00001605990"), currency="USD")
    wire = line.model_dump_json()
    assert json.loads(wire) == {"amount": "0.00001605990", "currency": "USD"}
    assert _Line.model_validate_json(wire).amount == Decimal("0.00001605990")


def test_float_on_the_wire_is_refused_with_a_clear_reason() -> None:
    with pytest.raises(ValidationError, match="send money as a decimal string"):
        _Line.model_validate_json('{"amount": 0.1, "currency": "USD"}')


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "1,5", "", "abc"])
def test_non_numbers_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        _Line(amount=bad, currency="USD")


@pytest.mark.parametrize("code", ["usd", "XYZ", "US", "EURO"])
def test_unknown_currency_is_refused(code: str) -> None:
    with pytest.raises(ValidationError, match="ISO 4217"):
        _Line(amount=Decimal(1), currency=code)


def test_minor_units_follow_iso_4217() -> None:
    assert (minor_units("USD"), minor_units("JPY"), minor_units("BHD"), minor_units("EUR")) == (
        2,
        0,
        3,
        2,
    )


@given(amounts)
def test_fixed_units_round_trip_exactly_at_nine_decimals(amount: Decimal) -> None:
    assert from_fixed_units(to_fixed_units(amount)) == amount


@given(st.decimals(min_value=-(10**6), max_value=10**6, places=11, allow_nan=False))
def test_fixed_units_lose_at_most_half_a_unit(amount: Decimal) -> None:
    assert abs(from_fixed_units(to_fixed_units(amount)) - amount) <= FIXED_UNIT / 2


def test_a_million_sub_cent_lines_sum_to_the_exact_total_within_a_thousandth_of_a_cent() -> None:
    rng = random.Random(20241001)
    lines = [Decimal(rng.randrange(1, 10**9)).scaleb(-11) for _ in range(1_000_000)]
    exact = sum(lines, Decimal(0))
    stored = sum(to_fixed_units(x) for x in lines)
    assert abs(from_fixed_units(stored) - exact) < Decimal("0.00001")
    assert round_to_minor(from_fixed_units(stored), "USD") == round_to_minor(exact, "USD")
    # what a float sum would have done is not our problem, but the stored sum is int64-safe:
    assert stored < 2**63


def test_rounding_to_minor_units_is_half_up() -> None:
    assert round_to_minor(Decimal("0.125"), "USD") == Decimal("0.13")
    assert round_to_minor(Decimal("-0.125"), "USD") == Decimal("-0.13")
    assert round_to_minor(Decimal("1234.5"), "JPY") == Decimal("1235")
    assert round_to_minor(Decimal("0.0005"), "BHD") == Decimal("0.001")


def test_allocation_makes_rounded_lines_add_up_to_the_rounded_total() -> None:
    parts = [Decimal("0.333"), Decimal("0.333"), Decimal("0.334")]
    assert allocate_rounded(parts, "USD") == [Decimal("0.33"), Decimal("0.33"), Decimal("0.34")]
    # each line alone rounds to 0.01 (three times 0.005), the total to 0.02:
    halves = [Decimal("0.005")] * 3
    assert sum(allocate_rounded(halves, "USD")) == Decimal("0.02")


@given(st.lists(amounts, max_size=30), st.sampled_from(["USD", "JPY", "BHD"]))
def test_allocation_always_sums_to_the_rounded_total(parts: list[Decimal], currency: str) -> None:
    allocated = allocate_rounded(parts, currency)
    assert sum(allocated, Decimal(0)) == round_to_minor(sum(parts, Decimal(0)), currency)
    step = Decimal(1).scaleb(-minor_units(currency))
    for part, got in zip(parts, allocated, strict=True):
        assert abs(got - part) < step + step


def test_money_adds_only_the_same_currency() -> None:
    assert Money(amount=Decimal("1.10"), currency="EUR") + Money(
        amount=Decimal("2.205"), currency="EUR"
    ) == Money(amount=Decimal("3.305"), currency="EUR")
    with pytest.raises(MoneyError):
        _ = Money(amount=Decimal(1), currency="EUR") + Money(amount=Decimal(1), currency="USD")
    assert Money(amount=Decimal("3.305"), currency="EUR").rounded().amount == Decimal("3.31")
