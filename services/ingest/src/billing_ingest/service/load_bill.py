"""Use case: load a provider bill file -> usage recorded / usage rejected -> bill processed.

Every row ends up in exactly one place: published as a usage record, or rejected with its row
number, column and reason (published to the rejected-usage topic and kept in the registry).
A file that is not a bill publishes nothing. Loading a file whose checksum was already loaded
to the end publishes nothing again; a load that crashed half-way is simply run again, and the
deterministic record ids make the second run's duplicates harmless downstream.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import cramjam
import orjson

from billing_ingest.adapters.bill_registry import BillRegistry, PreviousBill
from billing_ingest.adapters.csv_reader import RowBatch
from billing_ingest.adapters.readers import BillStream, open_bill
from billing_ingest.domain.cells import (
    Row,
    RowProblem,
    columns_key,
    content_digest,
    record_id_for,
    row_content,
    sign_problem,
)
from billing_ingest.domain.formats import FORMATS, BillFormat, ColumnarMapper, by_name, detect
from billing_ingest.domain.restatement import reversal_of
from billing_schemas.events import (
    BillProcessed,
    BillSummary,
    RejectedRow,
    UsageRecorded,
    UsageRejected,
)

SOURCE = "billing-ingest"


def pack_lines(lines: list[bytes]) -> bytes:
    """A chunk of published lines, compressed for the registry (zstd releases the GIL)."""
    return bytes(cramjam.zstd.compress(b"\n".join(lines), level=1))


def unpack_lines(packed: bytes) -> list[bytes]:
    """The lines of a :func:`pack_lines` chunk."""
    return bytes(cramjam.zstd.decompress(packed)).split(b"\n")


class NotABillError(ValueError):
    """The file is not a bill in a format we read; nothing was published."""


class UsagePublisher(Protocol):
    """Port: where accepted and rejected usage goes."""

    async def usage_serialized(self, records: list[tuple[str, bytes]], correlation_id: str) -> None:
        """Publish accepted records as ``UsageRecorded`` JSON (key: sub-account); wait for acks."""
        ...

    async def rejected(self, events: list[tuple[str, UsageRejected]]) -> None:
        """Publish rejected rows (key: bill id) and wait for the broker's ack."""
        ...

    async def bill_processed(self, event: BillProcessed) -> None:
        """Publish the bill's final figures."""
        ...


@dataclass
class _Load:
    """One load's running figures, its restatement state, and what waits to be published."""

    bill_id: str
    file_name: str
    fmt: BillFormat
    publisher: UsagePublisher
    registry: BillRegistry
    batch_rows: int
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    unchanged: int = 0
    scope: set[str] = field(default_factory=set)
    totals: dict[str, Decimal] = field(default_factory=dict)
    pending: list[tuple[str, bytes]] = field(default_factory=list)
    pending_rejects: list[RejectedRow] = field(default_factory=list)
    line_ids: list[str] = field(default_factory=list)
    line_payloads: list[bytes] = field(default_factory=list)
    chunks: int = 0
    # occurrence of each row content: 64-bit digest prefixes seen, full digests of repeats
    _seen: set[int] = field(default_factory=set)
    _repeats: Counter[str] = field(default_factory=Counter)
    # restatement: resolved at the first accepted row
    previous: PreviousBill | None = None
    resolved: bool = False
    previous_live: set[str] = field(default_factory=set)
    matched: set[str] = field(default_factory=set)
    reissued: set[str] = field(default_factory=set)
    version: int = 1
    _envelope: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._envelope = {
            "event_id": "",
            "event_type": "usage.recorded",
            "schema_version": 1,
            "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "source": SOURCE,
            "correlation_id": self.bill_id,
            "data": None,
        }

    def occurrence(self, digest: str) -> int:
        """1 for the first row with this content, 2 for the next identical one, and so on."""
        prefix = int(digest[:16], 16)
        if prefix not in self._seen:
            self._seen.add(prefix)
            return 1
        self._repeats[digest] += 1
        return self._repeats[digest] + 1

    async def resolve_previous(self, scope_entry: str) -> None:
        """At the first accepted row: is there an earlier version of this bill?"""
        self.resolved = True
        previous = await self.registry.previous_version(scope_entry, exclude=self.bill_id)
        if previous is None:
            return
        self.previous = previous
        async for ids, _ in self.registry.lines(previous.bill_id):
            self.previous_live.update(ids)
        self.reissued = await self.registry.reversed_ids(previous.chain)
        self.version = previous.version + 1

    def final_id(self, record_id: str) -> str:
        """A line a restatement reversed that comes back is a new line: it gets a new id."""
        return f"{record_id}~v{self.version}" if record_id in self.reissued else record_id

    async def accept(
        self,
        record_id: str,
        *,
        scope_entry: str,
        key: str,
        currency: str,
        billed: str,
        data: dict[str, Any] | bytes,
    ) -> None:
        """An accepted row: ``data`` is its record's fields without ``record_id``, or its
        JSON members (the record's JSON without its braces)."""
        if not self.resolved:
            await self.resolve_previous(scope_entry)
        record_id = self.final_id(record_id)
        self.accepted += 1
        self.scope.add(scope_entry)
        self.totals[currency] = self.totals.get(currency, Decimal(0)) + Decimal(billed)
        if isinstance(data, dict):
            data["record_id"] = record_id
            self._envelope["data"] = data
        else:
            self._envelope["data"] = orjson.Fragment(
                b'{"record_id":' + orjson.dumps(record_id) + b"," + data + b"}"
            )
        self._envelope["event_id"] = f"usage-recorded:{record_id}"
        payload = orjson.dumps(self._envelope)
        self.line_ids.append(record_id)
        self.line_payloads.append(payload)
        if record_id in self.previous_live:
            # the line is already out there, from the version this one restates
            self.unchanged += 1
            self.matched.add(record_id)
        else:
            self.pending.append((key, payload))
        if len(self.line_ids) >= self.batch_rows:
            await self.flush()

    async def add_columnar(self, batch: RowBatch, columnar: ColumnarMapper) -> None:
        """A batch through the format's columnar mapper; rows it leaves go :meth:`add_row`."""
        assert batch.arrow is not None
        numbers = [batch.number(i) for i in range(len(batch))]
        mapped = columnar(
            batch.arrow, bill_id=self.bill_id, file_name=self.file_name, row_numbers=numbers
        )
        columns = columns_key(batch.arrow.schema.names)
        fields = mapped.fields
        for i, values in enumerate(zip(*mapped.values, strict=True)):
            content = mapped.content[i]
            if not mapped.ok[i]:
                row = batch.arrow.slice(i, 1).to_pylist()[0]
                await self.add_row(row, numbers[i], (columns, content))
                continue
            self.read += 1
            digest = content_digest(columns, content)
            provider, account, period = (
                mapped.provider[i],
                mapped.billing_account[i],
                mapped.period[i],
            )
            record_id = record_id_for(provider, account, period, digest, self.occurrence(digest))
            await self.accept(
                record_id,
                scope_entry=f"{provider}|{account}|{period}",
                key=mapped.sub_account[i],
                currency=mapped.currency[i],
                billed=mapped.billed_cost[i],
                data=dict(zip(fields, values, strict=True)),
            )

    async def add_row(
        self, row: Row, row_number: int, content: tuple[str, str] | None = None
    ) -> None:
        """A row through the format's row mapper (``content``: its columns key and content,
        when the caller has them already)."""
        self.read += 1
        columns, text = (columns_key(row), row_content(row)) if content is None else content
        digest = content_digest(columns, text)
        result = self.fmt.to_record(
            row,
            bill_id=self.bill_id,
            file_name=self.file_name,
            row_number=row_number,
            digest=digest,
            occurrence=self.occurrence(digest),
        )
        if not isinstance(result, RowProblem):
            result = sign_problem(result, self.fmt.quantity_columns) or result
        if isinstance(result, RowProblem):
            self._reject(row_number, result.column, result.reason, row)
            return
        data = result.model_dump_json(exclude={"record_id"}).encode()
        await self.accept(
            result.record_id,
            scope_entry=f"{result.provider}|{result.billing_account_id}|{result.billing_period}",
            key=result.sub_account_id,
            currency=result.currency,
            billed=str(result.billed_cost),
            data=data[1:-1],
        )

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

    async def flush(self) -> None:
        """Publish what waits (and wait for the acks), then keep the lines and rejections."""
        usage, rejects = self.pending, self.pending_rejects
        self.pending, self.pending_rejects = [], []
        await self.publisher.usage_serialized(usage, self.bill_id)
        if rejects:
            await self.publisher.rejected([self.rejection_event(r) for r in rejects])
            await self.registry.add_rejections(self.bill_id, rejects)
        if self.line_ids:
            packed = await asyncio.to_thread(pack_lines, self.line_payloads)
            await self.registry.add_lines(self.bill_id, self.chunks, self.line_ids, packed)
            self.chunks += 1
            self.line_ids, self.line_payloads = [], []

    def rejection_event(self, row: RejectedRow) -> tuple[str, UsageRejected]:
        event = UsageRejected.create(
            row,
            source=SOURCE,
            correlation_id=self.bill_id,
            event_id=f"usage-rejected:{self.bill_id}:{row.row}",
        )
        return (self.bill_id, event)

    def restates(self) -> PreviousBill | None:
        """The earlier version this bill supersedes: the one whose scope is exactly this one's."""
        if self.previous is not None and sorted(self.scope) == sorted(self.previous.scope):
            return self.previous
        return None

    async def reverse_dropped_lines(self, previous: PreviousBill) -> int:
        """Reverse every line of the earlier version this one no longer holds."""
        dropped = self.previous_live - self.matched
        reversals: list[tuple[str, bytes]] = []
        reversed_ids: list[str] = []
        async for ids, packed in self.registry.lines(previous.bill_id):
            for record_id, line in zip(ids, unpack_lines(packed), strict=True):
                if record_id not in dropped:
                    continue
                original = UsageRecorded.model_validate_json(line).data
                reversal = reversal_of(original, bill_id=self.bill_id)
                event = UsageRecorded.create(
                    reversal,
                    source=SOURCE,
                    correlation_id=self.bill_id,
                    event_id=f"usage-recorded:{reversal.record_id}",
                )
                reversals.append((reversal.sub_account_id, event.model_dump_json().encode()))
                reversed_ids.append(record_id)
                if len(reversals) >= self.batch_rows:
                    await self.publisher.usage_serialized(reversals, self.bill_id)
                    reversals = []
        await self.publisher.usage_serialized(reversals, self.bill_id)
        await self.registry.add_reversed(previous.chain, self.bill_id, reversed_ids)
        return len(reversed_ids)


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

    try:
        return await _load(
            path,
            stream=stream,
            chosen=chosen,
            bill_id=bill_id,
            checksum=checksum,
            publisher=publisher,
            registry=registry,
            batch_rows=batch_rows,
            on_progress=on_progress,
        )
    except Exception as exc:
        # the registry says so; loading the file again starts over (same ids: nothing twice)
        await registry.fail(bill_id, f"{type(exc).__name__}: {exc}")
        raise


async def _load(
    path: Path,
    *,
    stream: BillStream,
    chosen: BillFormat,
    bill_id: str,
    checksum: str,
    publisher: UsagePublisher,
    registry: BillRegistry,
    batch_rows: int,
    on_progress: Callable[[int], None] | None,
) -> LoadResult:
    load = _Load(
        bill_id=bill_id,
        file_name=path.name,
        fmt=chosen,
        publisher=publisher,
        registry=registry,
        batch_rows=batch_rows,
    )
    for batch in stream.batches():
        if chosen.columnar is not None and batch.arrow is not None:
            await load.add_columnar(batch, chosen.columnar)
        else:
            for index, row in enumerate(batch.rows):
                await load.add_row(row, batch.number(index))
        # rows the reader could not split into the header's columns: rejected whole
        for bad in stream.malformed:
            load.add_malformed(bad.row_number, bad.reason, bad.text)
        stream.malformed.clear()
        if on_progress is not None:
            on_progress(load.read)
    await load.flush()

    restated = load.restates()
    corrections = 0 if restated is None else await load.reverse_dropped_lines(restated)
    summary = BillSummary(
        bill_id=bill_id,
        file_name=path.name,
        checksum_sha256=checksum,
        format=chosen.name,
        status="processed" if load.rejected == 0 else "partially_rejected",
        billing_periods=sorted({entry.rsplit("|", 1)[1] for entry in load.scope}),
        rows_read=load.read,
        rows_accepted=load.accepted,
        rows_rejected=load.rejected,
        billed_cost_totals=load.totals,
        scope=sorted(load.scope),
        version=load.version if restated is not None else 1,
        restates=None if restated is None else restated.bill_id,
        rows_unchanged=load.unchanged,
        corrections=corrections,
    )
    chain = bill_id if restated is None else restated.chain
    await registry.finish(summary, chain=chain)
    await publisher.bill_processed(
        BillProcessed.create(
            summary, source=SOURCE, correlation_id=bill_id, event_id=f"bill-processed:{bill_id}"
        )
    )
    return LoadResult(summary, already_loaded=False)
