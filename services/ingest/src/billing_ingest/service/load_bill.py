"""Use case: load a provider bill file -> usage recorded / usage rejected -> bill processed.

Every row ends up in exactly one place: published as a usage record, or rejected with its row
number, column and reason (published to the rejected-usage topic and kept in the registry).
A file that is not a bill publishes nothing. Loading a file whose checksum was already loaded
to the end publishes nothing again; a load that crashed half-way is simply run again, and the
deterministic record ids make the second run's duplicates harmless downstream.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from billing_ingest.adapters.bill_registry import BillRegistry
from billing_ingest.adapters.readers import open_bill
from billing_ingest.domain.cells import RowProblem, row_digest
from billing_ingest.domain.formats import FORMATS, BillFormat, by_name, detect
from billing_schemas.events import (
    BillProcessed,
    BillSummary,
    RejectedRow,
    UsageRecorded,
    UsageRejected,
)

SOURCE = "billing-ingest"


class NotABillError(ValueError):
    """The file is not a bill in a format we read; nothing was published."""


class UsagePublisher(Protocol):
    """Port: where accepted and rejected usage goes."""

    async def usage(self, events: list[tuple[str, UsageRecorded]]) -> None:
        """Publish accepted records (key: sub-account) and wait for the broker's ack."""
        ...

    async def rejected(self, events: list[tuple[str, UsageRejected]]) -> None:
        """Publish rejected rows (key: bill id) and wait for the broker's ack."""
        ...

    async def bill_processed(self, event: BillProcessed) -> None:
        """Publish the bill's final figures."""
        ...


@dataclass
class _Tally:
    """Running figures of one load, and what is waiting to be published."""

    bill_id: str
    file_name: str
    fmt: BillFormat
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    periods: set[str] = field(default_factory=set)
    totals: dict[str, Decimal] = field(default_factory=dict)
    pending: list[tuple[str, UsageRecorded]] = field(default_factory=list)
    pending_rejects: list[RejectedRow] = field(default_factory=list)
    _seen: Counter[str] = field(default_factory=Counter)

    def add_row(self, row: dict[str, str | None], row_number: int) -> None:
        self.read += 1
        digest = row_digest(row)
        self._seen[digest] += 1
        result = self.fmt.to_record(
            row,
            bill_id=self.bill_id,
            file_name=self.file_name,
            row_number=row_number,
            digest=digest,
            occurrence=self._seen[digest],
        )
        if isinstance(result, RowProblem):
            self._reject(row_number, result.column, result.reason, row)
            return
        self.accepted += 1
        self.periods.add(result.billing_period)
        self.totals[result.currency] = (
            self.totals.get(result.currency, Decimal(0)) + result.billed_cost
        )
        event = UsageRecorded.create(
            result,
            source=SOURCE,
            correlation_id=self.bill_id,
            event_id=f"usage-recorded:{result.record_id}",
        )
        self.pending.append((result.sub_account_id, event))

    def add_malformed(self, row_number: int | None, reason: str, text: str) -> None:
        self.read += 1
        self._reject(row_number, None, reason, {"text": text})

    def _reject(
        self, row_number: int | None, column: str | None, reason: str, raw: dict[str, str | None]
    ) -> None:
        self.rejected += 1
        self.pending_rejects.append(
            RejectedRow(
                bill_id=self.bill_id,
                file=self.file_name,
                row=row_number,
                column=column,
                reason=reason,
                raw=raw,
            )
        )

    def take(self) -> tuple[list[tuple[str, UsageRecorded]], list[RejectedRow]]:
        usage, rejects = self.pending, self.pending_rejects
        self.pending, self.pending_rejects = [], []
        return usage, rejects

    def rejection_event(self, row: RejectedRow) -> tuple[str, UsageRejected]:
        event = UsageRejected.create(
            row,
            source=SOURCE,
            correlation_id=self.bill_id,
            event_id=f"usage-rejected:{self.bill_id}:{row.row}",
        )
        return (self.bill_id, event)


@dataclass(frozen=True)
class LoadResult:
    """What ``billing ingest`` reports."""

    summary: BillSummary
    already_loaded: bool


def file_checksum(path: Path) -> str:
    """SHA-256 of the file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def load_bill(
    path: Path,
    *,
    publisher: UsagePublisher,
    registry: BillRegistry,
    fmt: str | None = None,
    batch_rows: int = 5_000,
    on_progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Load one bill file; see the module docstring for the guarantees."""
    if not path.is_file():  # noqa: ASYNC240 - one stat before a long, loop-owning load
        msg = f"{path}: no such file"
        raise NotABillError(msg)
    stream = open_bill(path)
    detected = detect(stream.header)
    chosen = by_name(fmt) if fmt else detected
    if fmt and chosen is None:
        names = ", ".join(f.name for f in FORMATS)
        msg = f"--format {fmt!r} is not one of {names}. Nothing was published."
        raise NotABillError(msg)
    if chosen is None:
        tried = "; ".join(
            f"{f.name}: missing {', '.join(f.missing(stream.header)[:4])}" for f in FORMATS
        )
        msg = f"{path.name}: not a bill in a format we read ({tried}). Nothing was published."
        raise NotABillError(msg)
    if chosen.missing(stream.header):
        missing = ", ".join(chosen.missing(stream.header))
        msg = f"{path.name}: --format {chosen.name}, but the header lacks {missing}"
        raise NotABillError(msg)

    checksum = file_checksum(path)
    bill_id = f"bill-{checksum[:20]}"
    done = await registry.processed(bill_id)
    if done is not None:
        return LoadResult(done, already_loaded=True)
    await registry.begin(bill_id=bill_id, file_name=path.name, checksum=checksum, fmt=chosen.name)

    tally = _Tally(bill_id=bill_id, file_name=path.name, fmt=chosen)

    async def flush() -> None:
        usage, rejects = tally.take()
        await publisher.usage(usage)
        if rejects:
            await publisher.rejected([tally.rejection_event(r) for r in rejects])
            await registry.add_rejections(bill_id, rejects)
        if on_progress is not None:
            on_progress(tally.read)

    for batch in stream.batches():
        for offset, row in enumerate(batch.rows):
            tally.add_row(row, batch.first_row_number + offset)
            if len(tally.pending) >= batch_rows:
                await flush()
        # rows pyarrow could not split into the header's columns: rejected whole
        for bad in stream.malformed:
            tally.add_malformed(bad.row_number, bad.reason, bad.text)
        stream.malformed.clear()
    await flush()

    summary = BillSummary(
        bill_id=bill_id,
        file_name=path.name,
        checksum_sha256=checksum,
        format=chosen.name,
        status="processed" if tally.rejected == 0 else "partially_rejected",
        billing_periods=sorted(tally.periods),
        rows_read=tally.read,
        rows_accepted=tally.accepted,
        rows_rejected=tally.rejected,
        billed_cost_totals=tally.totals,
    )
    await registry.finish(summary)
    await publisher.bill_processed(
        BillProcessed.create(
            summary, source=SOURCE, correlation_id=bill_id, event_id=f"bill-processed:{bill_id}"
        )
    )
    return LoadResult(summary, already_loaded=False)
