"""JSON logs carry the service and the correlation id of the work in progress."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from billing_runtime.observability import configure_logging, correlated


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", "json", "rating")
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def test_json_lines_name_the_service_and_the_correlation(captured: io.StringIO) -> None:
    log = logging.getLogger("billing.rating")
    with correlated("bill-123"):
        log.info("rated %d records", 5)
    with correlated([f"c{i}" for i in range(8)] + ["c0"]):
        log.warning("batch")
    log.info("idle")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [(x["message"], x["correlation_id"], x["service"], x["level"]) for x in lines] == [
        ("rated 5 records", "bill-123", "rating", "INFO"),
        ("batch", "c0,c1,c2,c3,c4,+3", "rating", "WARNING"),
        ("idle", "-", "rating", "INFO"),
    ]
    assert all({"time", "logger"} <= set(x) for x in lines)
