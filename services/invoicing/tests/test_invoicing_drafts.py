"""Drafts kept incrementally equal a full recomputation from the stored charges, whatever the
batches, redeliveries after crashes at any write, and charges published twice.

The stream is modelled as Kafka delivers it to one consumer: messages in order with their
partition and offset, read in batches from the last committed position; a batch that raises is
not committed and is read again (with other boundaries); rating may publish the same charge id
again at a later offset.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from invoicing_test_support import rated

from billing_invoicing.adapters.memory import InMemoryInvoiceRepository
from billing_invoicing.domain.model import (
    DraftLedger,
    Invoice,
    LineKey,
    StreamPosition,
    ledger_of,
)
from billing_invoicing.ports import ChargeToStore
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges
from billing_schemas.events import RatedCharge

CUSTOMERS = ("alpha", "beta", "gamma")
SERVICES = ("Amazon EC2", "Amazon S3")


class CrashingRepository(InMemoryInvoiceRepository):
    """Raises at the n-th write (a charge store or an invoice save), after doing it or not."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_at: int | None = None
        self.crash_before = False
        self.crashes = 0

    def _write(self) -> bool:
        if self.crash_at is None:
            return False
        self.crash_at -= 1
        if self.crash_at > 0:
            return False
        self.crash_at = None
        self.crashes += 1
        return True

    async def store_charges(self, charges: Any) -> Any:
        crash = self._write()
        if crash and self.crash_before:
            raise RuntimeError("crash before storing")
        result = await super().store_charges(charges)
        if crash:
            raise RuntimeError("crash after storing")
        return result

    async def save_ledger(self, ledger: DraftLedger) -> None:
        crash = self._write()
        if crash and self.crash_before:
            raise RuntimeError("crash before saving")
        await super().save_ledger(ledger)
        if crash:
            raise RuntimeError("crash after saving")


def recomputed(repo: InMemoryInvoiceRepository) -> dict[str, dict[LineKey, tuple[int, Decimal]]]:
    """Every invoice's lines summed again from the charges stored on it."""
    sums: dict[str, dict[LineKey, tuple[int, Decimal]]] = defaultdict(dict)
    for kept in repo.charges.values():
        stored = kept.stored
        count, price = sums[stored.invoice_id].get(stored.amounts.key, (0, Decimal(0)))
        sums[stored.invoice_id][stored.amounts.key] = (count + 1, price + stored.amounts.price)
    return dict(sums)


def incremental(repo: InMemoryInvoiceRepository) -> dict[str, dict[LineKey, tuple[int, Decimal]]]:
    """Every draft's lines as its ledger holds them."""
    return {
        invoice_id: {key: (line.charge_count, line.price) for key, line in sums.lines.items()}
        for ledger in repo.ledgers.values()
        for invoice_id, sums in ledger.drafts.items()
        if sums.lines
    }


charge_specs = st.lists(
    st.tuples(
        st.sampled_from(CUSTOMERS),
        st.sampled_from(SERVICES),
        st.decimals(min_value=Decimal("-5"), max_value=Decimal(50), places=4),
    ),
    min_size=1,
    max_size=60,
)


def stream_of(specs: list[tuple[str, str, Decimal]], republished: list[int]) -> list[Any]:
    """Messages (charge, position): customers on two partitions; some charges published again
    (same id and content) later in the stream."""
    charges = [
        rated(f"c{n}", customer, service=service, price=str(price), cost="0")
        for n, (customer, service, price) in enumerate(specs)
    ]
    charges += [charges[i % len(charges)] for i in republished]
    offsets = [0, 0]
    stream = []
    for charge in charges:
        partition = CUSTOMERS.index(charge.customer_id) % 2
        stream.append(PositionedCharge(charge, StreamPosition(partition, offsets[partition])))
        offsets[partition] += 1
    return stream


@settings(max_examples=150, deadline=None)
@given(
    specs=charge_specs,
    republished=st.lists(st.integers(min_value=0, max_value=59), max_size=8),
    batch_sizes=st.lists(st.integers(min_value=1, max_value=25), min_size=1, max_size=30),
    crashes=st.lists(st.tuples(st.integers(min_value=1, max_value=6), st.booleans()), max_size=6),
)
def test_drafts_equal_a_recomputation_under_redelivery_and_crashes(
    specs: list[tuple[str, str, Decimal]],
    republished: list[int],
    batch_sizes: list[int],
    crashes: list[tuple[int, bool]],
) -> None:
    stream = stream_of(specs, republished)
    repo = CrashingRepository()
    pending_crashes = list(crashes)

    async def consume() -> None:
        committed, turn = 0, 0
        while committed < len(stream):
            size = batch_sizes[turn % len(batch_sizes)]
            turn += 1
            if repo.crash_at is None and pending_crashes:
                repo.crash_at, repo.crash_before = pending_crashes.pop(0)
            batch = stream[committed : committed + size]
            try:
                await add_charges(repo, batch)
            except RuntimeError:
                continue  # not committed: read again from the same offset
            committed += len(batch)

    asyncio.run(consume())
    unique = {item.charge.charge_id: item.charge for item in stream}
    assert len(repo.charges) == len(unique)
    assert incremental(repo) == recomputed(repo)
    # and what was charged is exactly each distinct charge once
    total = sum((c.price for c in unique.values()), Decimal(0))
    drafts = [sums for ledger in repo.ledgers.values() for sums in ledger.drafts.values()]
    assert sum(sums.total for sums in drafts) == total


def test_a_charge_published_twice_is_counted_once_and_a_crash_between_writes_recovers() -> None:
    async def scenario() -> None:
        repo = CrashingRepository()
        first = PositionedCharge(rated("c1", price="10.00"), StreamPosition(0, 0))
        second = PositionedCharge(rated("c2", price="2.50"), StreamPosition(0, 1))
        again = PositionedCharge(rated("c1", price="10.00"), StreamPosition(0, 2))
        repo.crash_at = 1  # the charges are stored, then the process dies before the draft
        with pytest.raises(RuntimeError, match="after storing"):
            await add_charges(repo, [first, second])
        assert len(repo.charges) == 2
        assert await repo.draft_sums("alpha:2024-09") is None
        # redelivered from the committed offset: the stored-but-uncounted charges count now
        await add_charges(repo, [first, second])
        # rating published c1 again later: stored from offset 0, counted already
        await add_charges(repo, [again])
        draft = await repo.draft_sums("alpha:2024-09")
        assert draft is not None
        assert (draft.charge_count, draft.total) == (2, Decimal("12.50"))
        ledger = repo.ledgers[ledger_of("alpha")]
        assert ledger.counted_through == {0: 1}  # nothing new at offset 2: no write

    asyncio.run(scenario())


def test_charges_of_a_frozen_invoice_go_onto_the_next_open_one_as_late_lines() -> None:
    async def scenario() -> None:
        repo = InMemoryInvoiceRepository()
        await add_charges(repo, [PositionedCharge(rated("c1", price="4.00"))])
        september = await repo.get("alpha:2024-09")
        assert september is not None
        n = ledger_of("alpha")
        ledger = (await repo.get_ledgers([n]))[n]
        september.start_finalizing(date(2024, 10, 1), ledger.take("alpha:2024-09"))
        await repo.save(september)
        await repo.save_ledger(ledger)
        october = Invoice.new("alpha:2024-10")
        october.start_finalizing(date(2024, 11, 1), None)
        await repo.save(october)  # October is frozen too: the late charge goes to November
        events = await add_charges(repo, [PositionedCharge(rated("late", price="1.00"))])
        assert [e.invoice_id for e in events] == ["alpha:2024-11"]
        stored = repo.charges["late"]
        assert (stored.stored.invoice_id, stored.late) == ("alpha:2024-11", True)
        frozen = repo.invoices["alpha:2024-09"]
        assert [g.price for g in frozen.charge_groups()] == [Decimal("4.00")]
        assert await repo.draft_sums("alpha:2024-09") is None
        november = await repo.draft_sums("alpha:2024-11")
        assert november is not None
        assert list(november.lines) == [("2024-09", "AWS", "Amazon EC2", "usage")]

    asyncio.run(scenario())


def test_store_charges_reports_where_a_known_charge_stands() -> None:
    async def scenario() -> None:
        repo = InMemoryInvoiceRepository()
        charge: RatedCharge = rated("c1")
        [new] = await repo.store_charges(
            [ChargeToStore(charge, "alpha:2024-09", False, StreamPosition(1, 7))]
        )
        [known] = await repo.store_charges(
            [ChargeToStore(charge, "alpha:2024-10", True, StreamPosition(1, 9))]
        )
        assert (new.new, new.invoice_id, new.position) == (
            True,
            "alpha:2024-09",
            StreamPosition(1, 7),
        )
        assert (known.new, known.invoice_id, known.position) == (
            False,
            "alpha:2024-09",
            StreamPosition(1, 7),
        )

    asyncio.run(scenario())
