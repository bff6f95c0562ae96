"""CloudKitty's API output saved as a file: ``GET /v2/dataframes`` or ``GET /v2/summary``.

CloudKitty (OpenStack's rating service) answers with one JSON document, not JSON lines:

* ``/v2/dataframes``: ``{"total": n, "dataframes": [{"period": {"begin", "end"}, "usage":
  {"<metric>": [{"vol": {"qty", "unit"}, "rating": {"price"}, "groupby": {...},
  "metadata": {...}}, ...]}}, ...]}``: one row per rated entry, flattened to the names the
  JSON-lines reader gives a dataframe entry (``period.begin``, ``vol.qty``, ``rating.price``,
  ``groupby.project_id``, ``metadata.flavor_name``...), the metric name as ``type``;
* ``/v2/summary``: ``{"total": n, "columns": ["begin", "end", "qty", "rate", <groupby>...],
  "results": [[...], ...]}``: one row per result, under the same names: ``begin``/``end`` ->
  ``period.begin``/``period.end``, ``qty`` -> ``vol.qty``, ``rate`` -> ``rating.price``
  (CloudKitty's summary sums the entries' prices into ``rate``: "SUM(price) AS rate"), every
  group-by column -> ``groupby.<name>``.

A file may hold several responses one after the other (the pages of a paginated query).
Numbers are read from the JSON text as exact decimals, never floats, and written as plain
text. Rows are numbered in document order, the first entry being row 1. The whole file is
parsed at once: the API's pages are bounded by its ``limit``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from billing_ingest.adapters.csv_reader import MalformedRow, RowBatch
from billing_ingest.adapters.jsonl_reader import is_json_lines

BATCH_ROWS = 5_000
_API_DOCUMENT = re.compile(rb'^\s*\{\s*"(total|dataframes|columns|results)"\s*:')
"""How a CloudKitty response begins: its first key is one of these (a JSON-lines bill's first
object begins with a field of a usage line)."""

Row = dict[str, str | None]


def is_cloudkitty_api(path: Path) -> bool:
    """A ``.json`` file (or ``.json.gz``...) that begins as a CloudKitty API response."""
    if not is_json_lines(path):
        return False
    with pa.input_stream(str(path), compression="detect") as stream:
        head = stream.read(4096)
    return _API_DOCUMENT.match(head.removeprefix(b"\xef\xbb\xbf")) is not None


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int):
        return json.dumps(value)
    return json.dumps(value, default=str, separators=(",", ":"))


def _flat(prefix: str, values: object) -> Row:
    if not isinstance(values, dict):
        return {}
    return {f"{prefix}.{key}": _text(value) for key, value in values.items()}


def dataframe_rows(document: dict[str, Any]) -> Iterator[Row]:
    """The rated entries of a ``/v2/dataframes`` response, one flat row each."""
    for frame in document.get("dataframes") or []:
        period = _flat("period", frame.get("period"))
        for metric, entries in (frame.get("usage") or {}).items():
            for entry in entries or []:
                row: Row = {**period, "type": metric}
                for part in ("vol", "rating", "groupby", "metadata"):
                    row |= _flat(part, entry.get(part))
                yield {k: v for k, v in row.items() if v is not None}


_SUMMARY_NAMES = {"begin": "period.begin", "end": "period.end", "qty": "vol.qty"}
_SUMMARY_NAMES["rate"] = "rating.price"  # the summary's rate is the sum of the prices


def summary_rows(document: dict[str, Any]) -> Iterator[Row]:
    """The results of a ``/v2/summary`` response, one flat row each."""
    names = [_SUMMARY_NAMES.get(c, f"groupby.{c}") for c in document.get("columns") or []]
    for result in document.get("results") or []:
        row = {name: _text(value) for name, value in zip(names, result, strict=False)}
        yield {k: v for k, v in row.items() if v is not None}


@dataclass
class CloudKittyStream:
    """An open CloudKitty API output: its (flattened) header, then its rows in batches."""

    path: Path
    header: list[str]
    rows: list[Row]
    malformed: list[MalformedRow] = field(default_factory=list)

    def batches(self) -> Iterator[RowBatch]:
        """The rows in batches of at most ``BATCH_ROWS``."""
        for start in range(0, len(self.rows), BATCH_ROWS):
            yield RowBatch(start + 1, self.rows[start : start + BATCH_ROWS])


def _documents(text: str) -> Iterator[object]:
    """The JSON documents of ``text``, one after the other."""
    decoder = json.JSONDecoder(parse_float=Decimal)
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return
        document, at = decoder.raw_decode(text, at)
        yield document


def open_cloudkitty(path: Path) -> CloudKittyStream:
    """Read a CloudKitty API output; a file that is not one has no header (and no rows)."""
    with pa.input_stream(str(path), compression="detect") as stream:
        text = stream.read().decode("utf-8-sig")
    rows: list[Row] = []
    names: list[str] = []  # what every row of the response has, even when it has no row
    try:
        for document in _documents(text):
            if not isinstance(document, dict):
                return CloudKittyStream(path, [], [])
            if "dataframes" in document:
                names += _DATAFRAME_NAMES
                rows += dataframe_rows(document)
            if "results" in document:
                names += [_SUMMARY_NAMES.get(c, f"groupby.{c}") for c in document["columns"]]
                rows += summary_rows(document)
    except (json.JSONDecodeError, AttributeError, TypeError, KeyError):
        return CloudKittyStream(path, [], [])
    header = list(dict.fromkeys([*names, *(name for row in rows for name in row)]))
    return CloudKittyStream(path, header, rows)


_DATAFRAME_NAMES = ["period.begin", "period.end", "type", "vol.qty", "vol.unit", "rating.price"]
