"""A load that stops on an error is marked failed, and loading the file again finishes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from billing_ingest.adapters.memory import InMemoryBillRegistry, InMemoryUsagePublisher
from billing_ingest.service.load_bill import load_bill

SAMPLE = Path(__file__).resolve().parents[3] / "demo" / "focus_sample.csv"


class BrokerDown(InMemoryUsagePublisher):
    """Acknowledges the first batch, then fails as an unreachable broker would."""

    async def usage_serialized(self, records: list[tuple[str, bytes]], correlation_id: str) -> None:
        if self.usage_events:
            raise ConnectionError("broker unreachable")
        await super().usage_serialized(records, correlation_id)


async def test_a_load_that_fails_is_marked_failed_and_a_second_load_completes_it() -> None:
    registry = InMemoryBillRegistry()
    broken = BrokerDown()
    with pytest.raises(ConnectionError):
        await load_bill(SAMPLE, publisher=broken, registry=registry, batch_rows=100)
    [bill_id] = registry.begun
    assert registry.failed[bill_id] == "ConnectionError: broker unreachable"
    assert bill_id not in registry.done
    assert len(broken.usage_events) == 100

    working = InMemoryUsagePublisher()
    result = await load_bill(SAMPLE, publisher=working, registry=registry, batch_rows=100)
    assert not result.already_loaded
    assert result.summary.rows_accepted == 1000
    # the 100 published before the failure come again with the same ids: stored once downstream
    first_ids = {e.data.record_id for _, e in broken.usage_events}
    assert first_ids <= {e.data.record_id for _, e in working.usage_events}


def test_seen_digests_answer_as_a_set_would() -> None:
    """The compact store of digest prefixes (occurrence counting) against a plain set."""
    import random

    from billing_ingest.domain.cells import SeenDigests

    rng = random.Random(7)
    values = [rng.getrandbits(64) for _ in range(20_000)]
    values += values[:500]  # repeats
    values += [v ^ 1 for v in values[:500]]  # neighbours in the same bucket
    seen, reference = SeenDigests(), set[int]()
    for value in values:
        assert seen.add(value) == (value not in reference)
        reference.add(value)
