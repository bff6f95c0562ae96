"""Money: ``Decimal`` in code, a decimal string on the wire, integer fixed units in the database.

Rules (also in docs/money.md):

* Amounts are ``decimal.Decimal``; floats are refused wherever money enters, because a float
  cannot hold 0.1 exactly.
* On the wire (JSON events, the HTTP API) an amount is a decimal string such as ``"0.00001605990"``.
* In the database an amount is an ``int`` of :data:`FIXED_UNIT` (10**-9 of the currency's major
  unit, a "nano"), because FerretDB has no Decimal128 and ``$sum`` over int64 is exact. Provider
  bills carry up to 11 decimals; converting a line to nanos rounds half-even, so the error is at
  most 0.5 nano a line and a million lines stay within 0.0005 of a unit, far under one cent.
  int64 holds 9.2e9 major units in nanos, beyond any single invoice.
* Amounts shown to people and owed by them are rounded once, to the currency's ISO 4217 minor
  units (USD 2, JPY 0, BHD 3), half-up ("commercial rounding").
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from typing import Annotated

from babel.numbers import get_currency_precision, list_currencies
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer

FIXED_UNIT_EXPONENT = 9
"""Database amounts are integers of 10**-FIXED_UNIT_EXPONENT of the currency's major unit."""

FIXED_UNIT = Decimal(1).scaleb(-FIXED_UNIT_EXPONENT)
_SCALE = 10**FIXED_UNIT_EXPONENT


class MoneyError(ValueError):
    """An amount or currency that cannot be money."""


def parse_decimal(value: object) -> Decimal:
    """Parse an amount from a decimal string, int or Decimal; refuse floats, NaN and infinity."""
    if isinstance(value, (bool, float)):
        msg = f"amount {value!r} is a {type(value).__name__}: send money as a decimal string"
        raise MoneyError(msg)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            msg = f"amount {value!r} is not a decimal number"
            raise MoneyError(msg) from None
    else:
        msg = f"amount {value!r} of type {type(value).__name__} is not a decimal number"
        raise MoneyError(msg)
    if not result.is_finite():
        msg = f"amount {value!r} is not a finite number"
        raise MoneyError(msg)
    return result


def _format_decimal(value: Decimal) -> str:
    return format(value, "f")


WireDecimal = Annotated[
    Decimal,
    BeforeValidator(parse_decimal),
    PlainSerializer(_format_decimal, return_type=str, when_used="json"),
]
"""A Decimal that travels as a decimal string and refuses floats."""


@cache
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def known_currency_codes() -> frozenset[str]:
    """Every ISO 4217 code :data:`CurrencyCode` accepts."""
    return _known_currencies()


def _check_currency(code: str) -> str:
    if code not in _known_currencies():
        msg = f"{code!r} is not an ISO 4217 currency code"
        raise MoneyError(msg)
    return code


CurrencyCode = Annotated[str, AfterValidator(_check_currency)]
"""An ISO 4217 alphabetic currency code, upper case (``USD``, ``EUR``, ``JPY``)."""


def minor_units(currency: str) -> int:
    """Number of decimals of the currency's minor unit (ISO 4217): USD 2, JPY 0, BHD 3."""
    return int(get_currency_precision(_check_currency(currency)))


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
    """Format an owed amount for people, rounded to minor units, in the given locale."""
    from babel.numbers import format_currency

    return str(format_currency(round_to_minor(amount, currency), currency, locale=locale))
