"""Money: ``Decimal`` in code, a decimal string on the wire, integer fixed units in the database.

Rules (also in docs/money.md):

* Amounts are ``decimal.Decimal``; floats are refused wherever money enters, because a float
  cannot hold 0.1 exactly.
* On the wire (JSON events, the HTTP API) an amount is a decimal string such as ``"0.00001605990"``.
* In the database an amount is an ``int`` of :data:`FIXED_UNIT` (10**-9 of the currency's major
  unit, a "nano"), because FerretDB has no Decimal128 and ``$sum`` over int64 is exact. Provider
  bills carry up to 11 decimals; converting a line to nanos rounds half-even, so the error is at
  most 0.5 nano a line and a million lines stay within 0.0005 of a unit, far under one cent.
  int64 holds 9.2e9 major units in nanos: enough for the dollar or the euro, not for the rupiah,
  so invoicing stores each currency in a unit of its own (``billing_invoicing.domain.units``).
* Amounts shown to people and owed by them are rounded once, to the currency's ISO 4217 minor
  units (USD 2, JPY 0, BHD 3, IQD 3), half-up ("commercial rounding"). The exponents come from
  ISO 4217's own list (the ``iso4217`` package), not from CLDR, which differs for a few
  currencies (IQD, RSD, ALL, AFN, LAK, MGA, IRR, LBP...).
* Money on the wire is bounded: at most :data:`MAX_SIGNIFICANT_DIGITS` significant digits,
  a magnitude under 10**:data:`MAX_MAGNITUDE_EXPONENT` and at most :data:`MAX_DECIMAL_PLACES`
  decimal places. Anything else is refused with a named reason before it is written out as
  text (``1E+999999999999999999`` would otherwise be a string no memory holds).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from typing import Annotated

from babel.numbers import get_currency_precision, list_currencies
from iso4217 import Currency as Iso4217Currency
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer

FIXED_UNIT_EXPONENT = 9
"""Database amounts are integers of 10**-FIXED_UNIT_EXPONENT of the currency's major unit."""

FIXED_UNIT = Decimal(1).scaleb(-FIXED_UNIT_EXPONENT)
_SCALE = 10**FIXED_UNIT_EXPONENT


class MoneyError(ValueError):
    """An amount or currency that cannot be money."""


class AmountOutOfBoundsError(MoneyError):
    """A number, but outside the bounds of money on the wire (the message names which)."""


MAX_SIGNIFICANT_DIGITS = 40
"""Digits an amount on the wire may carry (computed amounts have 28, provider bills ~20)."""

MAX_MAGNITUDE_EXPONENT = 24
"""Amounts on the wire are below 10**24 in magnitude: the world's yearly product in the
currency with the most units to the dollar is about 10**20."""

MAX_DECIMAL_PLACES = 60
"""The smallest digit an amount on the wire may have is 10**-60 (rates and unit prices go to
about 10**-40 after currency conversion at 28 significant digits)."""

MAX_AMOUNT_TEXT = 128
"""Characters a decimal string may have before it is even parsed."""


def _shown(value: object) -> str:
    """The value for an error message, cut short: a refused amount may be megabytes long."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:32]}...({len(text)} characters)"


def check_bounds(value: Decimal, shown: str | None = None) -> Decimal:
    """Refuse a finite amount outside the bounds of money on the wire (docs/money.md).

    The reason is named first in the message: ``amount too large``, ``too many digits`` or
    ``too many decimal places``.
    """
    _, digits, exponent = value.as_tuple()
    what = shown or _shown(value)
    if not isinstance(exponent, int):  # NaN or infinity
        msg = f"amount {what} is not a finite number"
        raise MoneyError(msg)
    if len(digits) > MAX_SIGNIFICANT_DIGITS:
        msg = (
            f"too many digits: amount {what} has {len(digits)} significant digits, "
            f"at most {MAX_SIGNIFICANT_DIGITS} (docs/money.md)"
        )
        raise AmountOutOfBoundsError(msg)
    if value and value.adjusted() >= MAX_MAGNITUDE_EXPONENT:
        msg = (
            f"amount too large: {what} is not below 10^{MAX_MAGNITUDE_EXPONENT} "
            "in magnitude (docs/money.md)"
        )
        raise AmountOutOfBoundsError(msg)
    if exponent >= MAX_MAGNITUDE_EXPONENT:  # a zero such as 0E+999999999
        msg = f"amount too large: {what} has an exponent of {exponent} (docs/money.md)"
        raise AmountOutOfBoundsError(msg)
    if exponent < -MAX_DECIMAL_PLACES:
        msg = (
            f"too many decimal places: amount {what} has its last digit at 10^{exponent}, "
            f"at most {MAX_DECIMAL_PLACES} decimal places (docs/money.md)"
        )
        raise AmountOutOfBoundsError(msg)
    return value


_WITHIN_BOUNDS = re.compile(r"-?[0-9]{1,24}(\.[0-9]{1,16})?")
"""A plain decimal string that cannot break a bound (below 10^24, at most 40 digits, 16
places): what most amounts on the wire look like, taken without :func:`check_bounds`."""


def parse_decimal(value: object) -> Decimal:
    """Parse an amount from a decimal string, int or Decimal; refuse floats, NaN, infinity and
    amounts outside the bounds of money on the wire (:func:`check_bounds`)."""
    if type(value) is str and _WITHIN_BOUNDS.fullmatch(value):
        return Decimal(value)
    if isinstance(value, (bool, float)):
        msg = f"amount {value!r} is a {type(value).__name__}: send money as a decimal string"
        raise MoneyError(msg)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        # bit_length is O(1): a huge int is refused before it is converted
        if value.bit_length() > MAX_SIGNIFICANT_DIGITS * 4:
            msg = (
                f"amount too large: an integer of {value.bit_length()} bits is not below "
                f"10^{MAX_MAGNITUDE_EXPONENT} in magnitude (docs/money.md)"
            )
            raise AmountOutOfBoundsError(msg)
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_AMOUNT_TEXT:
            msg = (
                f"too many digits: amount {_shown(value)} is longer than {MAX_AMOUNT_TEXT} "
                "characters (docs/money.md)"
            )
            raise AmountOutOfBoundsError(msg)
        try:
            result = Decimal(text)
        except InvalidOperation:
            msg = f"amount {_shown(value)} is not a decimal number"
            raise MoneyError(msg) from None
    else:
        msg = f"amount {_shown(value)} of type {type(value).__name__} is not a decimal number"
        raise MoneyError(msg)
    if not result.is_finite():
        msg = f"amount {_shown(value)} is not a finite number"
        raise MoneyError(msg)
    return check_bounds(result, _shown(value))


def _format_decimal(value: Decimal) -> str:
    return format(value, "f")


WireDecimal = Annotated[
    Decimal,
    BeforeValidator(parse_decimal),
    PlainSerializer(_format_decimal, return_type=str, when_used="json"),
]
"""A Decimal that travels as a decimal string and refuses floats."""


@cache
def _minor_units_table() -> dict[str, int]:
    """Minor units of every accepted currency code: the one table amounts owed are rounded by.

    ISO 4217's own exponents (its current list, "List One", as published by the ISO 4217
    maintenance agency and packaged by ``iso4217``) wherever ISO gives one. CLDR (Babel) only
    for the codes ISO no longer lists (withdrawn currencies such as BGN or HRK, which old data
    may still carry) and those for which ISO says no minor unit applies (XAU, XDR...).
    """
    table = {code: int(get_currency_precision(code)) for code in list_currencies()}
    for currency in Iso4217Currency:
        if currency.exponent is not None:
            table[currency.code] = currency.exponent
    return table


def known_currency_codes() -> frozenset[str]:
    """Every ISO 4217 code :data:`CurrencyCode` accepts."""
    return frozenset(_minor_units_table())


def _check_currency(code: str) -> str:
    if code not in _minor_units_table():
        msg = f"{code!r} is not an ISO 4217 currency code"
        raise MoneyError(msg)
    return code


CurrencyCode = Annotated[str, AfterValidator(_check_currency)]
"""An ISO 4217 alphabetic currency code, upper case (``USD``, ``EUR``, ``JPY``)."""


def minor_units(currency: str) -> int:
    """Number of decimals of the currency's minor unit, ISO 4217's exponent: USD 2, JPY 0,
    BHD 3, IQD 3, RSD 2 (see :func:`_minor_units_table` for where each comes from)."""
    return _minor_units_table()[_check_currency(currency)]


def to_fixed_units(amount: Decimal) -> int:
    """Convert an amount to database fixed units (nanos), rounding half-even."""
    return int((amount * _SCALE).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_fixed_units(units: int) -> Decimal:
    """Convert database fixed units (nanos) back to an exact Decimal amount."""
    return Decimal(units).scaleb(-FIXED_UNIT_EXPONENT)


def round_to_minor(amount: Decimal, currency: str) -> Decimal:
    """Round an amount half-up to the currency's minor units: the one rounding owed amounts get."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def allocate_rounded(amounts: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Round each amount to minor units so that the parts add up to the rounded total.

    The total is rounded once (half-up); each part is first rounded down, then the minor units
    still missing go, one each, to the parts with the largest remainders (largest-remainder
    method; ties go to the earlier part). Used so that invoice lines add up to the subtotal.
    """
    if not amounts:
        return []
    step = Decimal(1).scaleb(-minor_units(currency))
    target = round_to_minor(sum(amounts, Decimal(0)), currency)
    floors = [(a / step).to_integral_value(rounding="ROUND_FLOOR") * step for a in amounts]
    missing = int(((target - sum(floors, Decimal(0))) / step).to_integral_value())
    order = sorted(range(len(amounts)), key=lambda i: (-(amounts[i] - floors[i]), i))
    result = list(floors)
    if missing >= 0:
        for i in order[:missing]:
            result[i] += step
    else:  # negative totals: take from the smallest remainders
        for i in order[::-1][:-missing]:
            result[i] -= step
    return result


class Money(BaseModel):
    """An amount in a currency. The amount is exact; it is not rounded on construction."""

    model_config = ConfigDict(frozen=True)

    amount: WireDecimal
    currency: CurrencyCode

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            msg = f"cannot add {other.currency} to {self.currency}"
            raise MoneyError(msg)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def rounded(self) -> Money:
        """This amount rounded to the currency's minor units (half-up)."""
        return Money(amount=round_to_minor(self.amount, self.currency), currency=self.currency)

    def to_fixed_units(self) -> int:
        """Database representation: integer nanos of the currency."""
        return to_fixed_units(self.amount)


def format_amount(amount: Decimal, currency: str, locale: str = "en") -> str:
    """Format an owed amount for people, rounded to minor units, in the given locale.

    The locale's currency pattern with the currency's ISO 4217 minor units (Babel would use
    CLDR's, which differ for IQD, RSD...), so the printed amount is the amount owed.
    """
    import copy

    from babel import Locale
    from babel.numbers import format_currency

    digits = minor_units(currency)
    pattern = copy.copy(Locale.parse(locale).currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return str(
        format_currency(
            round_to_minor(amount, currency),
            currency,
            format=pattern,
            locale=locale,
            currency_digits=False,
        )
    )
