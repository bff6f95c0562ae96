"""Batch decoding: a bad record never takes its neighbours down with it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from aiokafka import ConsumerRecord

from billing_runtime.kafka import decode_batch
from billing_schemas.events import BillProcessed, BillSummary


def _record(offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="billing.bill.processed.v1",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=[],
    )


def test_invalid_records_are_split_from_valid_ones() -> None:
    event = BillProcessed.create(
        BillSummary(
            bill_id="b1",
            file_name="f.csv",
            checksum_sha256="0" * 64,
            format="focus-1.0",
            status="processed",
            billing_periods=["2024-09"],
            rows_read=1,
            rows_accepted=1,
            rows_rejected=0,
            billed_cost_totals={"USD": Decimal("1.5")},
        ),
        source="test",
        correlation_id="c1",
        occurred_at=datetime(2024, 10, 1, tzinfo=UTC),
    )
    records = [
        _record(0, event.model_dump_json().encode()),
        _record(1, b"not json at all"),
        _record(2, b'{"event_id": "x"}'),
    ]
    batch = decode_batch(records, BillProcessed)
    assert [r.offset for r, _ in batch.events] == [0]
    assert batch.events[0][1] == event
    assert [f.record.offset for f in batch.failed] == [1, 2]
    assert all("BillProcessed validation failed" in f.error for f in batch.failed)
