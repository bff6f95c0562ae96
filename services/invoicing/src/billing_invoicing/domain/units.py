"""Amounts as invoicing stores them: integers of a fixed unit chosen per currency.

Invoicing keeps money in the database as int64 integers (``*_units`` fields) because FerretDB
has no Decimal128 and its ``$sum`` and ``$inc`` are exact over int64 only. A fixed 10**-9 of the
major unit ("nanos") holds 9.2e9 major units: 9.2 billion US dollars, but only 570 thousand
dollars' worth of Indonesian rupiah. So the unit depends on the currency:

    a currency's stored unit is 10**-e of its major unit, where e = 9 - floor(log10(units of
    the currency to one US dollar)), and 9 for currencies worth a tenth of a dollar or more.

Every currency's unit is then worth at most about a nano-dollar (sums of a million charges stay
exact to well under a cent) and int64 holds at least about 0.9 billion US dollars' worth in
every currency (IDR: 10**-5 rupiah, 9.2e13 IDR, 5.5 billion dollars). Currencies not listed
below (the dollar, euro, pound, yuan...) keep nanos, as every amount was stored before.

The table is part of the storage format: a currency's exponent never changes once amounts in
it are stored (a currency that loses value keeps its unit; its capacity shrinks by as much).
Changing one needs a migration of every stored amount in that currency.

Amounts of different currencies are never summed or compared in the database without their
currency (sums group by currency; the HTTP total filter compares per exponent).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

DEFAULT_EXPONENT = 9
"""Nanos: the unit of every currency not in :data:`UNIT_EXPONENTS`."""

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

_ORDERS_OF_MAGNITUDE: dict[int, str] = {
    # floor(log10(units to one US dollar)), December 2026 (market rates where they differ)
    1: "AFN ALL BWP CUP CZK DOP EGP ERN GHS GMD HNL INR KGS MDL MKD MRU MUR MVR MXN MZN NAD "
    "NIO NOK PHP RUB SCR SLE SRD STN SZL LSL THB TRY TWD UAH UYU ZAR ZMW ZWG CVE BTN",
    2: "AMD AOA BDT CLP CRC DJF DZD ETB GYD HTG HUF ISK JMD JPY KES KMF KPW KZT LKR LRD NPR "
    "PKR RSD SDG SOS VES VUV XAF XOF XPF YER MRO",
    3: "BIF CDF COP GNF IQD KHR KRW MGA MMK MNT MWK NGN PYG RWF SSP TZS UGX ARS ZMK",
    4: "IDR LAK LBP SLL STD SYP UZS VND BYR ZWL",
    6: "IRR",
}

UNIT_EXPONENTS: dict[str, int] = {
    code: DEFAULT_EXPONENT - magnitude
    for magnitude, codes in _ORDERS_OF_MAGNITUDE.items()
    for code in codes.split()
}
"""Currencies whose stored unit is coarser than a nano (module docstring)."""


class AmountNotStorableError(OverflowError):
    """An amount beyond what int64 units of its currency hold (the message says which)."""


def unit_exponent(currency: str | None) -> int:
    """``e``: the currency's stored unit is 10**-e of its major unit (nanos when the currency
    is not known yet: an empty draft)."""
    return DEFAULT_EXPONENT if currency is None else UNIT_EXPONENTS.get(currency, DEFAULT_EXPONENT)


def to_units(amount: Decimal, currency: str | None) -> int:
    """The amount as stored: an integer of the currency's unit, rounded half-even; refused
    (:class:`AmountNotStorableError`) beyond int64."""
    units = int(amount.scaleb(unit_exponent(currency)).to_integral_value(ROUND_HALF_EVEN))
    if not INT64_MIN <= units <= INT64_MAX:
        largest = Decimal(INT64_MAX).scaleb(-unit_exponent(currency))
        msg = (
            f"amount too large to store: {amount} {currency} is beyond the "
            f"{largest:.4E} {currency} the database holds in one amount (docs/money.md)"
        )
        raise AmountNotStorableError(msg)
    return units


def from_units(units: int, currency: str | None) -> Decimal:
    """A stored integer of the currency's unit as the exact amount."""
    return Decimal(int(units)).scaleb(-unit_exponent(currency))


def exponent_groups(currencies: list[str] | None = None) -> dict[int, list[str]]:
    """The listed currencies by exponent (every currency of :data:`UNIT_EXPONENTS` if None);
    the default exponent's group is the currencies *not* listed elsewhere."""
    groups: dict[int, list[str]] = {}
    for code, exponent in sorted(UNIT_EXPONENTS.items()):
        if currencies is None or code in currencies:
            groups.setdefault(exponent, []).append(code)
    return groups


def units_range_filter(
    field: str, low: Decimal | None, high: Decimal | None
) -> dict[str, Any] | None:
    """A MongoDB filter for documents whose ``field`` (units of the document's ``currency``)
    lies in ``[low, high]``: one clause per exponent, bounds clamped to int64 (a bound beyond
    what a currency can store matches all or none of it, as it should). None: no bound."""
    if low is None and high is None:
        return None
    clauses: list[dict[str, Any]] = []
    groups = exponent_groups()
    exponents = {DEFAULT_EXPONENT, *groups}
    for exponent in sorted(exponents):
        bounds: dict[str, int] = {}
        if low is not None:
            units = _scaled(low, exponent, ceiling=True)
            if units > INT64_MAX:
                continue  # nothing in these currencies is that large
            bounds["$gte"] = max(units, INT64_MIN)
        if high is not None:
            units = _scaled(high, exponent, ceiling=False)
            if units < INT64_MIN:
                continue
            bounds["$lte"] = min(units, INT64_MAX)
        if exponent == DEFAULT_EXPONENT:
            which: dict[str, list[str]] = {"$nin": sorted(UNIT_EXPONENTS)}
        else:
            which = {"$in": groups[exponent]}
        clauses.append({"currency": which, field: bounds})
    if not clauses:
        return {"_id": {"$in": []}}  # matches nothing
    return {"$or": clauses}


def _scaled(amount: Decimal, exponent: int, *, ceiling: bool) -> int:
    rounding = "ROUND_CEILING" if ceiling else "ROUND_FLOOR"
    return int(amount.scaleb(exponent).to_integral_value(rounding))
