"""Tables for people at 80 columns (a CI log, a pipe): a key value is never cut.

Each case is a table the commands print, too wide for 80 columns as declared; ``fit`` must give
every key value whole, fold the text, and never print a line wider than the console.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from billing_runtime import tables

WIDTH = 80


def printed(table: Table, width: int = WIDTH) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(tables.fit(table, console.width))
    return console.export_text()


def _invoices(*rows: tuple[str, ...]) -> Table:
    table = Table(
        tables.key("number"),
        tables.text("customer"),
        tables.key("period"),
        tables.amount("total"),
        tables.key("status"),
        tables.key("issued"),
        tables.key("due"),
    )
    for row in rows:
        table.add_row(*row)
    return table


FINALIZED = (
    "CCR-2026-000002", "northwind", "2024-09", "$240.00", "paid", "2026-12-01", "2026-12-31"
)  # fmt: skip


def test_a_table_that_fits_is_printed_as_declared() -> None:
    text = printed(_invoices(("CCR-2026-000002", "nw", "2024-09", "$1.00", "paid", "-", "-")))

    assert text.splitlines()[0].startswith("\u250f")  # the frame rich draws by default
    assert "CCR-2026-000002" in text


def test_key_values_are_whole_and_text_folds_when_the_frame_is_too_wide() -> None:
    plain = Table("number", "customer", "period", "total", "status", "issued", "due")
    plain.add_row(*FINALIZED)
    rich_alone = Console(width=WIDTH, file=io.StringIO(), record=True, color_system=None)
    rich_alone.print(plain)
    assert "2026-12-\u2026" in rich_alone.export_text()  # what the demo printed: cut dates

    text = printed(_invoices(FINALIZED))
    for value in FINALIZED:
        assert value in text
    assert "\u2026" not in text
    assert max(len(line) for line in text.splitlines()) <= WIDTH


def test_a_row_too_wide_for_any_table_is_printed_as_a_block_per_row() -> None:
    rows = [
        ("CCR-2026-000002", "northwind", "2024-09", "$1,234,567.89 (so far)", "partially_paid",
         "2026-12-01", "2026-12-31"),
        ("-", "contoso-media-ltd", "2024-10", "$140.00 (so far)", "draft", "-", "-"),
    ]  # fmt: skip
    text = printed(_invoices(*rows))

    for row in rows:
        for value in row:
            assert value in text
    assert "\u2026" not in text
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    lines = [line.rstrip() for line in text.splitlines()]
    assert "number    CCR-2026-000002" in lines
    assert "status    partially_paid" in lines


def test_a_long_text_value_folds_instead_of_being_cut() -> None:
    table = Table(tables.key("check"), tables.amount("difference"), tables.text("cause"))
    cause = "a restated bill replaced these lines after their invoice was issued " * 3
    table.add_row("bill-vs-invoices", "12.3456789", cause)
    text = printed(table)

    assert "bill-vs-invoices" in text
    assert "12.3456789" in text
    assert set(cause.split()) <= set(text.split())  # every word printed, none cut
    assert "\u2026" not in text
