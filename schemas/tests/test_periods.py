"""One month label for every document (issue 12: the PDF said "LLLL yyyy", the email "MMMM y")."""

from __future__ import annotations

import pytest

from billing_schemas.periods import month_label


@pytest.mark.parametrize(
    ("language", "label"),
    [
        ("en", "September 2024"),
        ("de", "September 2024"),
        ("de-CH", "September 2024"),
        ("fr", "septembre 2024"),
        # the stand-alone month where the language declines it ("MMMM y" said "września")
        ("pl", "wrzesień 2024"),
        ("ja", "2024年9月"),
        ("xx-unknown", "September 2024"),
    ],
)
def test_a_period_is_named_as_the_language_names_a_month_and_year(
    language: str, label: str
) -> None:
    assert month_label("2024-09", language) == label
