"""Tables for people, at any width: a key value is never cut.

Outside a terminal (a CI log, a pipe) rich renders at 80 columns and, when a table is wider,
shrinks every column and cuts its values with an ellipsis: "CCR-2026…", "2026-12…". An operator
copies and compares numbers, ids, dates and amounts; those must print whole. So the commands'
tables declare two kinds of columns:

- :func:`key` columns (numbers, ids, dates, amounts, states): never wrapped, never cut;
- :func:`text` columns (names, descriptions, reasons): folded onto more lines when narrow.

and print through :func:`fit`, which gives the table as declared when every key value fits,
else the same table without its frame, else one block of ``column  value`` lines per row (the
"fewer columns" of a narrow screen): what is printed changes shape, never content.
"""

from __future__ import annotations

from rich import box
from rich.cells import cell_len
from rich.console import JustifyMethod, RenderableType
from rich.table import Column, Table
from rich.text import Text


def key(header: str, *, justify: JustifyMethod = "left") -> Column:
    """A column of values an operator copies or compares: printed whole, on one line."""
    return Column(header, no_wrap=True, justify=justify)


def amount(header: str) -> Column:
    """A key column of amounts, right-aligned."""
    return key(header, justify="right")


def text(header: str) -> Column:
    """A descriptive column: folds onto more lines when the table is narrow."""
    return Column(header, overflow="fold")


def _plain(cell: object) -> str:
    return Text.from_markup(cell).plain if isinstance(cell, str) else str(cell)


def _natural(column: Column) -> int:
    """The width of the column's widest line (header included), unwrapped."""
    texts = [_plain(column.header), *(_plain(cell) for cell in column.cells)]
    return max((cell_len(line) for t in texts for line in t.splitlines() or [""]), default=0)


TEXT_MIN_WIDTH = 12
"""A text column is never narrower than this (or its widest line): folded, still readable."""


def _laid_out(table: Table, overhead: int, width: int) -> bool:
    """Fix each column's width so that the table fits ``width``: key columns at their natural
    width, text columns sharing the rest (at least :data:`TEXT_MIN_WIDTH` each); False when
    the key columns and the text columns' minimums do not fit."""
    natural = [_natural(column) for column in table.columns]
    floor = [
        n if column.no_wrap else min(n, TEXT_MIN_WIDTH)
        for column, n in zip(table.columns, natural, strict=True)
    ]
    spare = width - overhead - sum(floor)
    if spare < 0:
        return False
    widths = list(floor)
    for index, column in enumerate(table.columns):  # the rest to text columns, in order
        if not column.no_wrap:
            extra = min(spare, natural[index] - floor[index])
            widths[index] += extra
            spare -= extra
    for column, column_width in zip(table.columns, widths, strict=True):
        column.width = max(column_width, 1)
    return True


def _overhead(table: Table) -> int:
    """Characters a table spends on borders and padding besides its columns' contents."""
    columns = len(table.columns)
    _, right, _, left = table.padding
    padding = (left + right) * columns - (0 if table.pad_edge else left + right)
    if table.box is None:
        return padding
    edges = 2 if table.show_edge else 0
    return padding + (columns - 1) + edges


def _unframed(table: Table) -> Table:
    """The same columns and rows, without borders: a rule under the header, two spaces
    between columns."""
    bare = Table(
        *table.columns,
        title=table.title,
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
        show_edge=False,
    )
    bare.rows = list(table.rows)
    return bare


def as_blocks(table: Table) -> RenderableType:
    """One block per row: a line ``column  value`` per column (values fold), blank between."""
    headers = [_plain(column.header) for column in table.columns]
    cells = [list(column.cells) for column in table.columns]
    blocks = Table(
        Column(no_wrap=True, style="bold"),
        Column(overflow="fold"),
        box=None,
        show_header=False,
        padding=(0, 2, 0, 0),
        title=table.title,
    )
    for index in range(table.row_count):
        for header, column in zip(headers, cells, strict=True):
            blocks.add_row(header, column[index])
        if index < table.row_count - 1:
            blocks.add_row("", "")
    return blocks


def fit(table: Table, width: int) -> RenderableType:
    """``table`` laid out to ``width`` with every key value whole (module docstring)."""
    if _laid_out(table, _overhead(table), width):
        return table
    bare = _unframed(table)
    if _laid_out(bare, _overhead(bare), width):
        return bare
    return as_blocks(table)
