"""Billing periods as people read them: one function for every document that names a month.

The invoice PDF (invoicing) and the emails (notify) both name the billing period; they call
:func:`month_label`, so the two can never name the same month differently.
"""

from __future__ import annotations

from datetime import date

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton

DEFAULT_LANGUAGE = "en"


def babel_locale(language: str) -> Locale:
    """The Babel locale of a customer's language (``de``, ``de-CH``, ``de_CH``); English if
    Babel does not know it: an unknown language never stops a document from being issued."""
    try:
        return Locale.parse(language.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LANGUAGE)


def month_label(period: str, language: str = DEFAULT_LANGUAGE) -> str:
    """A ``YYYY-MM`` billing period as month and year in ``language``: ``2024-09`` ->
    "September 2024" (en, de), "septembre 2024" (fr), "2024年9月" (ja).

    The pattern is the locale's own for a month and year (CLDR skeleton ``yMMMM``), which picks
    the stand-alone month name where the language declines it (pl "wrzesień 2024").
    """
    year, month = (int(part) for part in period.split("-"))
    return str(format_skeleton("yMMMM", date(year, month, 1), locale=babel_locale(language)))
