"""Money: wire round-trips, fixed-unit storage, summation and the rounding rules."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from billing_schemas import money as money_module
from billing_schemas.money import (
    FIXED_UNIT,
    CurrencyCode,
    Money,
    MoneyError,
    WireDecimal,
    allocate_rounded,
    format_amount,
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


@pytest.mark.parametrize("currency", ["IQD", "RSD", "ALL", "AFN", "LAK", "MGA", "IRR", "LBP"])
def test_minor_units_are_iso_4217_exponents_where_cldr_differs(currency: str) -> None:
    iso = {"IQD": 3, "RSD": 2, "ALL": 2, "AFN": 2, "LAK": 2, "MGA": 2, "IRR": 2, "LBP": 2}
    assert minor_units(currency) == iso[currency]
    step = Decimal(1).scaleb(-iso[currency])
    assert round_to_minor(Decimal("1234.56789"), currency) == Decimal("1234.56789").quantize(
        step, rounding="ROUND_HALF_UP"
    )


def test_the_common_currencies_keep_their_minor_units_and_rounding() -> None:
    expected = {
        "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "JPY": 0, "KRW": 0, "CLP": 0, "VND": 0,
        "BHD": 3, "KWD": 3, "TND": 3, "IDR": 2, "INR": 2, "HUF": 2, "ISK": 0, "XAF": 0,
    }  # fmt: skip
    assert {code: minor_units(code) for code in expected} == expected
    assert round_to_minor(Decimal("1234.5"), "JPY") == Decimal("1235")


def test_owed_amounts_print_with_the_iso_minor_units() -> None:
    assert format_amount(Decimal("1234.5678"), "IQD", "en").endswith("1,234.568")
    assert format_amount(Decimal("1234.5678"), "RSD", "en").endswith("1,234.57")
    assert format_amount(Decimal("1234.5"), "JPY", "en") == "\xa51,235"
    assert format_amount(Decimal("-59.5"), "EUR", "de") == "-59,50\xa0\u20ac"


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        ("1E+999999999999999999", "amount too large"),
        ("1E+100000000", "amount too large"),
        ("9E+300000", "amount too large"),
        ("1E+24", "amount too large"),
        ("0E+999999999", "amount too large"),
        ("1E-999999999999999999", "too many decimal places"),
        ("0E-100000000", "too many decimal places"),
        ("1" * 41, "too many digits"),
        ("1" * 10_000_000, "too many digits"),
        (10**100_000, "amount too large"),
    ],
    ids=lambda v: v[:24] if isinstance(v, str) else "a-huge-int",
)
def test_money_on_the_wire_is_bounded_and_refused_with_a_named_reason(
    hostile: object, reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason) as refused:
        _Line.model_validate({"amount": hostile, "currency": "USD"})
    assert len(str(refused.value)) < 1000  # the error does not echo a megabyte amount
    if isinstance(hostile, str):
        with pytest.raises(ValidationError, match=reason):
            _Line.model_validate_json(json.dumps({"amount": hostile, "currency": "USD"}))


@pytest.mark.parametrize(
    "real",
    [
        "99999999999999999999999.99",  # just under 10^24
        "-123456789012345678.123456789",
        "0.00001605990",
        "1.041666666666666666666666667E-18",  # 28 digits, after a currency conversion
        "1E-60",
        "0E-60",
        "1" * 24,
    ],
)
def test_the_bounds_hold_any_real_amount(real: str) -> None:
    line = _Line.model_validate_json(json.dumps({"amount": real, "currency": "IRR"}))
    assert line.amount == Decimal(real)
    assert Decimal(json.loads(line.model_dump_json())["amount"]) == Decimal(real)


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


@given(
    st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.from_regex(r"\A-?[0-9]{1,30}(\.[0-9]{0,20})?\Z"),
        st.text(alphabet="0123456789.-+eE ", max_size=45),
    )
)
def test_plain_strings_are_parsed_as_the_general_path_parses_them(text: str) -> None:
    """Plain decimal strings within the bounds skip the bounds check: they must get the value
    (and the exponent) the full check gives, and anything else must still go the full check."""

    def general(value: str) -> Decimal | str:
        try:
            return money_module.check_bounds(Decimal(value.strip()))
        except (MoneyError, ArithmeticError) as exc:
            return type(exc).__name__

    def parsed(value: str) -> Decimal | str:
        try:
            return money_module.parse_decimal(value)
        except MoneyError as exc:
            return type(exc).__name__

    got, expected = parsed(text), general(text)
    if isinstance(expected, Decimal) and not expected.is_finite():
        expected = "MoneyError"
    if isinstance(got, Decimal) and isinstance(expected, Decimal):
        assert got.as_tuple() == expected.as_tuple()
    else:
        assert isinstance(got, str)
        assert isinstance(expected, str)
