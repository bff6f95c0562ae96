"""Use case: load a provider bill file -> usage recorded / usage rejected -> bill processed.

Every row ends up in exactly one place: published as a usage record, or rejected with its row
number, column and reason (published to the rejected-usage topic and kept in the registry).
A file that is not a bill (or is empty, or has no row) publishes nothing. Loading a file whose
checksum was already loaded to the end publishes nothing again, unless a later version has
restated it since: then it restates that one in turn. A load that crashed half-way is simply
run again, and the deterministic record ids make the second run's duplicates harmless
downstream. A file whose last line is cut never restates a bill.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import MAX_PREC, Context, Decimal
from functools import reduce
from pathlib import Path
from typing import Literal

import cramjam
import orjson

from billing_ingest.adapters.csv_reader import RowBatch, UnreadableBillError
from billing_ingest.adapters.readers import BillStream, cut_line, is_empty, open_bill
from billing_ingest.domain.cells import (
    Row,
    RowProblem,
    SeenDigests,
    columns_key,
    content_digest,
    record_id_for,
    row_content,
    sign_problem,
)
from billing_ingest.domain.formats import FORMATS, BillFormat, ColumnarMapper, by_name, detect
from billing_ingest.domain.openstack import deployment_currency
from billing_ingest.domain.restatement import reversal_of
from billing_ingest.ports import BillRegistry, CatalogCurrencies, PreviousBill, UsagePublisher
from billing_schemas.events import (
    REJECTED_ROWS_CARRIED,
    BillProcessed,
    BillSummary,
    RejectedRow,
    UsageRecorded,
    UsageRejected,
)

SOURCE = "billing-ingest"
_ZERO = Decimal(0)
_EXACT = Context(prec=MAX_PREC)
"""Bill totals add up exactly, whatever their digits (the default context keeps 28)."""


def pack_lines(lines: list[bytes]) -> bytes:
    """A chunk of published lines, compressed for the registry (zstd releases the GIL)."""
    return bytes(cramjam.zstd.compress(b"\n".join(lines), level=1))


def unpack_lines(packed: bytes) -> list[bytes]:
    """The lines of a :func:`pack_lines` chunk."""
    return bytes(cramjam.zstd.decompress(packed)).split(b"\n")


class NotABillError(ValueError):
    """The file is not a bill in a format we read; nothing was published."""


class CutFileError(NotABillError):
    """The file's last line is cut and loading it would restate an earlier version."""


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
    first_rejects: list[RejectedRow] = field(default_factory=list)
    line_ids: list[str] = field(default_factory=list)
    line_payloads: list[bytes] = field(default_factory=list)
    chunks: int = 0
    # occurrence of each row content: 64-bit digest prefixes seen, full digests of repeats
    _seen: SeenDigests = field(default_factory=SeenDigests)
    _repeats: Counter[str] = field(default_factory=Counter)
    # restatement: resolved at the first accepted row
    previous: PreviousBill | None = None
    resolved: bool = False
    previous_live: set[str] = field(default_factory=set)
    matched: set[str] = field(default_factory=set)
    reissued: set[str] = field(default_factory=set)
    version: int = 1
    defaults: Row = field(default_factory=dict)
    """Cells every row gets that the file does not have (the currency of CloudKitty data)."""
    cut_line: Callable[[], int | None] | None = None
    """The number of the file's last line if it is cut (asked only before a restatement)."""
    _event_head: bytes = b""
    _event_rest: bytes = b""
    _in_flight: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        # every usage event of the load is the same envelope around its record: written once,
        # the record's id and JSON go between these pieces
        envelope = orjson.dumps(
            {
                "event_id": "",
                "event_type": "usage.recorded",
                "schema_version": 1,
                "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "source": SOURCE,
                "correlation_id": self.bill_id,
                "data": orjson.Fragment(b"{}"),
            }
        )
        self._event_head = b'{"event_id":'
        self._event_rest = envelope[len(b'{"event_id":""') : -len(b"{}}")]

    def occurrence(self, digest: str) -> int:
        """1 for the first row with this content, 2 for the next identical one, and so on."""
        prefix = int(digest[:16], 16)
        if self._seen.add(prefix):
            return 1
        return self.occurrence_again(digest)

    def occurrence_again(self, digest: str) -> int:
        """:meth:`occurrence` of a row whose digest prefix was seen already."""
        self._repeats[digest] += 1
        return self._repeats[digest] + 1

    async def resolve_previous(self, scope_entry: str) -> None:
        """At the first accepted row: is there an earlier version of this bill?

        A file whose last line is cut (an interrupted download) must not restate it: every
        line after the cut would be reversed. Nothing is published before this point.
        """
        self.resolved = True
        previous = await self.registry.previous_version(scope_entry, exclude=self.bill_id)
        if previous is None:
            return
        cut = await asyncio.to_thread(self.cut_line) if self.cut_line is not None else None
        if cut is not None:
            msg = (
                f"{self.file_name}: the file ends in the middle of line {cut} (an interrupted "
                f"download?) and would restate {previous.bill_id}, reversing every line it "
                "lacks. Nothing was published. Download the file again (if it is complete, "
                "end its last line with a line break)."
            )
            raise CutFileError(msg)
        self.previous = previous
        # only the ids: the lines' JSON is read once, if it comes to reversing some of them
        self.previous_live = await self.registry.line_ids(previous.bill_id)
        self.reissued = await self.registry.reversed_ids(previous.chain)
        self.version = previous.version + 1

    def final_id(self, record_id: str) -> str:
        """A line a restatement reversed that comes back is a new line: it gets a new id."""
        return f"{record_id}~v{self.version}" if record_id in self.reissued else record_id

    def accept(self, record_id: str, *, key: str, currency: str, billed: str, data: bytes) -> bool:
        """An accepted row of the row path: ``data`` is its record's JSON members without
        ``record_id`` (the record's JSON without its braces). Says whether to flush now.
        (Synchronous: a coroutine per row costs more than the rest of this method.)"""
        record_id = self.final_id(record_id)
        self.totals[currency] = _EXACT.add(self.totals.get(currency, _ZERO), Decimal(billed))
        payload = b"".join(
            (
                self._event_head,
                orjson.dumps("usage-recorded:" + record_id),
                self._event_rest,
                b'{"record_id":',
                orjson.dumps(record_id),
                b",",
                data,
                b"}}",
            )
        )
        return self._accepted(record_id, key, payload)

    def _accepted(self, record_id: str, key: str, payload: bytes) -> bool:
        self.accepted += 1
        self.line_ids.append(record_id)
        self.line_payloads.append(payload)
        if record_id in self.previous_live:
            # the line is already out there, from the version this one restates
            self.unchanged += 1
            self.matched.add(record_id)
        else:
            self.pending.append((key, payload))
        return len(self.line_ids) >= self.batch_rows

    async def in_scope(self, entries: Iterable[str]) -> None:
        """Scope entries (``provider|billing account|period``) of accepted rows; the first
        one ever decides which earlier bill this one may restate."""
        for entry in entries:
            if not self.resolved:
                await self.resolve_previous(entry)
            self.scope.add(entry)

    async def add_columnar(self, batch: RowBatch, columnar: ColumnarMapper) -> None:
        """A batch through the format's columnar mapper; rows it leaves go :meth:`add_row`.

        The mapper writes each record's JSON; here each row gets its id (a digest of its
        content, the one step left per row) and the envelope around the record."""
        assert batch.arrow is not None
        first = batch.first_row_number
        numbers = batch.row_numbers or list(range(first, first + len(batch)))
        mapped = columnar(
            batch.arrow, bill_id=self.bill_id, file_name=self.file_name, row_numbers=numbers
        )
        columns = columns_key(batch.arrow.schema.names)
        await self.in_scope(mapped.scope)
        for code, cells in mapped.billed_cost.items():
            self.totals[code] = reduce(
                _EXACT.add, map(Decimal, cells), self.totals.get(code, _ZERO)
            )
        head = self._event_head + b'"usage-recorded:'
        rest = b'"' + self._event_rest + b"{"
        reissued = self.reissued
        # the rows the mapper left, as dicts for the row mapper: taken out in one go (a slice
        # per row costs more than the row mapper itself), in row order
        slow = [i for i, good in enumerate(mapped.ok) if not good]
        left = iter(batch.arrow.take(slow).to_pylist() if slow else ())
        rows = zip(mapped.ok, mapped.content, mapped.members, mapped.sub_account, strict=True)
        seen, sha256 = self._seen, hashlib.sha256
        prefix = columns.encode() + b"\x1e"  # content_hash's start: hashed in one call below
        for i, (good, content, members, key) in enumerate(rows):
            if not good:
                await self.add_row(next(left), numbers[i], (columns, content.decode()))
                continue
            self.read += 1
            digest = sha256(prefix + content).hexdigest()
            # record_id_for and occurrence, inlined: most rows are a first occurrence
            if seen.add(int(digest[:16], 16)):
                record_id = digest[:32]
            else:
                record_id = record_id_for("", "", "", digest, self.occurrence_again(digest))
            if reissued and record_id in reissued:
                record_id = self.final_id(record_id)
            rid = record_id.encode()
            payload = b"".join((head, rid, rest, members, b',"record_id":"', rid, b'"}}'))
            if self._accepted(record_id, key, payload):
                await self.flush()

    async def add_row(
        self, row: Row, row_number: int, content: tuple[str, str] | None = None
    ) -> None:
        """A row through the format's row mapper (``content``: its columns key and content,
        when the caller has them already)."""
        self.read += 1
        if self.defaults:
            row = {**self.defaults, **row}
            content = None
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
        await self.in_scope(
            (f"{result.provider}|{result.billing_account_id}|{result.billing_period}",)
        )
        if self.accept(
            result.record_id,
            key=result.sub_account_id,
            currency=result.currency,
            billed=str(result.billed_cost),
            data=data[1:-1],
        ):
            await self.flush()

    def add_malformed(self, row_number: int | None, reason: str, text: str) -> None:
        self.read += 1
        self._reject(row_number, None, reason, {"text": text})

    def _reject(
        self, row_number: int | None, column: str | None, reason: str, raw: dict[str, str | None]
    ) -> None:
        self.rejected += 1
        rejected = RejectedRow(
            bill_id=self.bill_id,
            file=self.file_name,
            row=row_number,
            column=column,
            reason=reason,
            raw=raw,
        )
        self.pending_rejects.append(rejected)
        self.first_rejects.append(rejected)
        if len(self.first_rejects) > 2 * REJECTED_ROWS_CARRIED:
            self.first_rejects = first_rejected_rows(self.first_rejects)

    async def flush(self) -> None:
        """Hand what waits to the broker and the registry, and go on reading.

        The publish (and its acks), the rejections and the lines of one flush run as a task
        while the next rows are mapped; the next flush, and the end of the load, wait for it
        first. So at most two flushes' rows are in memory, the order of flushes is kept, and
        a failure stops the load at the next flush at the latest.
        """
        await self.settle()
        usage, rejects = self.pending, self.pending_rejects
        ids, payloads, chunk = self.line_ids, self.line_payloads, self.chunks
        self.pending, self.pending_rejects = [], []
        self.line_ids, self.line_payloads = [], []
        if ids:
            self.chunks += 1
        self._in_flight = asyncio.create_task(self._hand_over(usage, rejects, ids, payloads, chunk))

    async def abandon(self) -> None:
        """The load failed: stop the flush in flight (loading again redoes it)."""
        if self._in_flight is not None:
            self._in_flight.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._in_flight
            self._in_flight = None

    async def settle(self) -> None:
        """Wait for the flush in flight (and raise its error, if any)."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            await in_flight

    async def _hand_over(
        self,
        usage: list[tuple[str, bytes]],
        rejects: list[RejectedRow],
        ids: list[str],
        payloads: list[bytes],
        chunk: int,
    ) -> None:
        async def lines() -> None:
            if ids:
                packed = await asyncio.to_thread(pack_lines, payloads)
                await self.registry.add_lines(self.bill_id, chunk, ids, packed)

        async def rejections() -> None:
            if rejects:
                await self.publisher.rejected([self.rejection_event(r) for r in rejects])
                await self.registry.add_rejections(self.bill_id, rejects)

        await asyncio.gather(
            self.publisher.usage_serialized(usage, self.bill_id), rejections(), lines()
        )

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


async def _outside_cells(
    path: Path,
    chosen: BillFormat,
    header: list[str],
    currency: str | None,
    catalog: CatalogCurrencies | None,
) -> Row:
    """The currency cell every row gets when the format's data names none (else nothing)."""
    if chosen.currency_column is None or chosen.currency_column in header:
        return {}
    known: set[str] = set()
    if currency is None and catalog is not None and chosen.provider is not None:
        known = await catalog.invoicing_currencies(chosen.provider)
    resolved = deployment_currency(currency, known)
    if isinstance(resolved, RowProblem):
        msg = f"{path.name}: {resolved.reason}. Nothing was published."
        raise NotABillError(msg)
    return {chosen.currency_column: resolved}


def _reject_malformed(stream: BillStream, load: _Load) -> None:
    """Rows the reader could not split into the header's columns: each rejected whole."""
    for bad in stream.malformed:
        load.add_malformed(bad.row_number, bad.reason, bad.text)
    stream.malformed.clear()


def bill_status(
    *, accepted: int, rejected: int
) -> Literal["processed", "partially_rejected", "rejected"]:
    """``processed`` when no row was rejected, ``rejected`` when none was accepted (a bill of
    which nothing is billed), else ``partially_rejected``."""
    if rejected == 0:
        return "processed"
    return "rejected" if accepted == 0 else "partially_rejected"


def _with_first_rows(stream: BillStream) -> tuple[Iterator[RowBatch] | None, Row | None]:
    """The stream's batches and its first row; None for the batches when the file holds no
    row at all (good or malformed).

    Batches are read up to the first that has rows, so a header-only file is known before
    anything is recorded or published, and detection may read the first row."""
    batches = stream.batches()
    for batch in batches:
        if len(batch):
            first = batch.arrow.slice(0, 1).to_pylist()[0] if batch.arrow else batch.rows[0]
            return itertools.chain((batch,), batches), first
    return (None if not stream.malformed else iter(())), None


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
    currency: str | None = None,
    catalog: CatalogCurrencies | None = None,
) -> LoadResult:
    """Load one bill file; see the module docstring for the guarantees.

    ``currency`` (``--currency``) is the currency of data that names none (CloudKitty's);
    without it, ``catalog`` is asked (:func:`~billing_ingest.domain.openstack.deployment_currency`).
    """
    stream, batches, first_row = _open_rows(path)
    chosen = _chosen_format(path, stream.header, first_row, fmt)
    defaults = await _outside_cells(path, chosen, stream.header, currency, catalog)

    checksum = file_checksum(path)
    bill_id = await _bill_id_to_load(registry, checksum)
    if isinstance(bill_id, LoadResult):
        return bill_id
    await registry.begin(bill_id=bill_id, file_name=path.name, checksum=checksum, fmt=chosen.name)

    try:
        return await _load(
            path,
            stream=stream,
            batches=batches,
            defaults=defaults,
            chosen=chosen,
            bill_id=bill_id,
            checksum=checksum,
            publisher=publisher,
            registry=registry,
            batch_rows=batch_rows,
            on_progress=on_progress,
        )
    except UnreadableBillError as exc:  # found past the first rows: the load stops there
        await registry.fail(bill_id, f"{type(exc).__name__}: {exc}")
        msg = (
            f"{path.name}: {exc}. The load stopped there; loading the file again once it is "
            "fixed publishes nothing twice."
        )
        raise NotABillError(msg) from None
    except Exception as exc:
        # the registry says so; loading the file again starts over (same ids: nothing twice)
        await registry.fail(bill_id, f"{type(exc).__name__}: {exc}")
        raise


def _open_rows(path: Path) -> tuple[BillStream, Iterator[RowBatch], Row | None]:
    """The bill's stream, its batches of rows and its first row; :class:`NotABillError`
    (nothing published) for a missing, empty, unreadable or header-only file."""
    if not path.is_file():
        msg = f"{path}: no such file"
        raise NotABillError(msg)
    try:
        stream = open_bill(path)
        if not "".join(stream.header).strip() and is_empty(path):  # whitespace: no header
            msg = f"{path.name}: the file is empty. Nothing was published."
            raise NotABillError(msg)
        batches, first_row = _with_first_rows(stream)
    except UnreadableBillError as exc:
        msg = f"{path.name}: {exc}. Nothing was published."
        raise NotABillError(msg) from None
    if batches is None:
        msg = f"{path.name}: the file has a header but no rows. Nothing was published."
        raise NotABillError(msg)
    return stream, batches, first_row


def _chosen_format(
    path: Path, header: list[str], first_row: Row | None, fmt: str | None
) -> BillFormat:
    """The format named by ``--format``, else the one the header and first row show;
    :class:`NotABillError` when there is none or its columns are missing."""
    chosen = by_name(fmt) if fmt else detect(header, first_row)
    if fmt and chosen is None:
        names = ", ".join(f.name for f in FORMATS)
        msg = f"--format {fmt!r} is not one of {names}. Nothing was published."
        raise NotABillError(msg)
    if chosen is None:
        tried = "; ".join(f"{f.name}: missing {', '.join(f.missing(header)[:4])}" for f in FORMATS)
        msg = f"{path.name}: not a bill in a format we read ({tried}). Nothing was published."
        raise NotABillError(msg)
    if chosen.missing(header):
        missing = ", ".join(chosen.missing(header))
        msg = f"{path.name}: --format {chosen.name}, but the header lacks {missing}"
        raise NotABillError(msg)
    return chosen


async def _bill_id_to_load(registry: BillRegistry, checksum: str) -> str | LoadResult:
    """The id to load the file under (its checksum's), or the result of loading it before.
    An earlier version loaded again after a later one restated it gets the next version's
    id: it restates the latest in turn, so that what was published adds up to this file
    again."""
    bill_id = f"bill-{checksum[:20]}"
    done = await registry.processed(bill_id)
    if done is None:
        return bill_id
    latest = await registry.latest_in_chain(bill_id)
    if latest is None or latest.checksum_sha256 == checksum:
        return LoadResult(latest or done, already_loaded=True)
    return f"{bill_id}~v{latest.version + 1}"


async def _load(
    path: Path,
    *,
    stream: BillStream,
    batches: Iterator[RowBatch],
    defaults: Row,
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
        cut_line=lambda: cut_line(path),
        defaults=defaults,
    )
    try:
        for batch in batches:
            if chosen.columnar is not None and batch.arrow is not None:
                await load.add_columnar(batch, chosen.columnar)
            else:
                for index, row in enumerate(batch.rows):
                    await load.add_row(row, batch.number(index))
            _reject_malformed(stream, load)
            if on_progress is not None:
                on_progress(load.read)
            await asyncio.sleep(0)  # let the flush in flight talk to the broker
        # malformed rows after the last batch (or in a file with no good row at all)
        _reject_malformed(stream, load)
    except BaseException:
        await load.abandon()
        raise
    await load.flush()
    await load.settle()
    return await _finish(load, path=path, chosen=chosen, bill_id=bill_id, checksum=checksum)


async def _finish(
    load: _Load, *, path: Path, chosen: BillFormat, bill_id: str, checksum: str
) -> LoadResult:
    """Once every row is published: reverse the lines a restated bill dropped, record the
    bill's summary and publish ``BillProcessed``."""
    registry, publisher = load.registry, load.publisher
    restated = load.restates()
    corrections = 0 if restated is None else await load.reverse_dropped_lines(restated)
    summary = BillSummary(
        bill_id=bill_id,
        file_name=path.name,
        checksum_sha256=checksum,
        format=chosen.name,
        status=bill_status(accepted=load.accepted, rejected=load.rejected),
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
        first_rejected_rows=first_rejected_rows(load.first_rejects),
    )
    chain = bill_id if restated is None else restated.chain
    await registry.finish(summary, chain=chain)
    await publisher.bill_processed(
        BillProcessed.create(
            summary, source=SOURCE, correlation_id=bill_id, event_id=f"bill-processed:{bill_id}"
        )
    )
    return LoadResult(summary, already_loaded=False)


def first_rejected_rows(rows: list[RejectedRow]) -> list[RejectedRow]:
    """The first :data:`~billing_schemas.events.REJECTED_ROWS_CARRIED` rejected rows by row
    number, a problem of the whole file (no row) first; rows of one number keep their order.
    The bill's summary carries them for the operators' report (a malformed row is found after
    the well-formed rows of its batch, so the order of rejection is not the row order)."""
    return sorted(rows, key=lambda r: r.row or 0)[:REJECTED_ROWS_CARRIED]
